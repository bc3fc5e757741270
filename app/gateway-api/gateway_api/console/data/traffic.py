"""Traffic figures and charts from sv-log's statistics (``GET /api/v1/stats...``),
read as the signed-in user (``stats:read`` in their tenant)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from gateway_api.console.client import UserApi


async def today(api: UserApi, **filters: str) -> dict[str, Any]:
    """sv-log's today-against-yesterday (``tenant``, ``app``, ``route`` filters)."""
    answer: dict[str, Any] = await api.get("/api/v1/stats/today", **filters)
    return answer


def _epoch(start: str) -> float:
    return datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()


def hourly_chart(today_answer: dict[str, Any]) -> dict[str, Any]:
    """Today's and yesterday's requests per hour of the UTC day, for ``chart()``: the
    x axis is today's hours; yesterday's are shifted onto them; today's hours still
    to come are gaps."""
    days = {name: today_answer.get(name) or {} for name in ("today", "yesterday")}
    points_today = days["today"].get("hours", [])
    points_yesterday = days["yesterday"].get("hours", [])
    now = time.time()
    x = [_epoch(p["start"]) for p in points_today]
    return {
        "x": x,
        "series": [
            {
                "label": "today",
                "values": [
                    p["requests"] if at <= now else None
                    for p, at in zip(points_today, x, strict=False)
                ],
            },
            {"label": "yesterday", "values": [p["requests"] for p in points_yesterday]},
        ],
    }


def totals(today_answer: dict[str, Any]) -> dict[str, int]:
    """Today's request and error counts."""
    day = today_answer.get("today") or {}
    sums = day.get("totals") or {}
    return {
        "requests": int(sums.get("requests", 0)),
        "errors_4xx": int(sums.get("errors_4xx", 0)),
        "errors_5xx": int(sums.get("errors_5xx", 0)),
    }


async def current_qps(api: UserApi, **filters: str) -> float:
    """Requests per second over the last complete minute (sv-log's minute rows)."""
    to = int(time.time()) // 60 * 60
    answer = await api.get(
        "/api/v1/stats", step="minute", **{"from": str(to - 60), "to": str(to)}, **filters
    )
    requests = sum(
        int(point.get("requests", 0))
        for series in answer.get("series", [])
        for point in series.get("points", [])
    )
    return round(requests / 60.0, 2)


async def series(
    api: UserApi, *, step: str = "hour", hours: int = 24, **filters: str
) -> dict[str, Any]:
    """Requests and errors per ``step`` over the last ``hours``, for ``chart()``."""
    to = int(time.time())
    answer = await api.get(
        "/api/v1/stats", step=step, **{"from": str(to - hours * 3600), "to": str(to)}, **filters
    )
    points = [p for s in answer.get("series", [])[:1] for p in s.get("points", [])]
    return {
        "x": [_epoch(p["start"]) for p in points],
        "series": [
            {"label": "requests", "values": [p.get("requests", 0) for p in points]},
            {
                "label": "errors",
                "values": [p.get("errors_4xx", 0) + p.get("errors_5xx", 0) for p in points],
            },
        ],
    }
