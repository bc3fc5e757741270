"""Overview: services, tenants and apps, current QPS, requests today, errors, and the
traffic of today against yesterday per hour."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from gateway_api.console.client import PlatformError
from gateway_api.console.data import cluster as cluster_data
from gateway_api.console.data import traffic
from gateway_api.console.deps import ConsoleDep, ViewerDep
from gateway_api.console.rendering import render

router = APIRouter()


async def _count(coro: Any) -> int | None:
    """The length of a list answer; None when the viewer may not read it."""
    try:
        answer = await coro
    except PlatformError as exc:
        if exc.status in (401, 403, 404):
            return None
        raise
    if isinstance(answer, dict):
        for key in ("items", "tenants", "apps"):
            if isinstance(answer.get(key), list):
                return len(answer[key])
        return int(answer.get("total", 0))
    return len(answer) if isinstance(answer, list) else None


@router.get("/overview", response_class=HTMLResponse)
async def overview(request: Request, viewer: ViewerDep, console: ConsoleDep) -> Response:
    """The platform at a glance."""
    snapshot = cluster_data.cluster(console.gateway)
    api = viewer.api
    errors: list[str] = []
    today: dict[str, Any] = {}
    qps: float | None = None
    tenants, apps = await asyncio.gather(
        _count(api.get("/api/v1/tenants")), _count(api.get("/api/v1/auth/apps"))
    )
    try:
        today, qps = await asyncio.gather(traffic.today(api), traffic.current_qps(api))
    except PlatformError as exc:
        errors.append(f"Traffic statistics: {exc.message}")
    instances = [i for pool in snapshot["services"] for i in pool["instances"]]
    return render(
        request,
        "pages/overview.html",
        services=len(cluster_data.service_names(snapshot)),
        instances=len(instances),
        healthy=sum(1 for i in instances if i["health"] == "up"),
        tenants=tenants,
        apps=apps,
        qps=qps,
        totals=traffic.totals(today) if today else None,
        change_ratio=today.get("change_ratio"),
        traffic_chart=traffic.hourly_chart(today) if today else None,
        problems=[
            (pool["service"], pool["region"], i)
            for pool in snapshot["services"]
            for i in pool["instances"]
            if i["health"] != "up" or i["circuit"] != "closed"
        ],
        errors=errors,
        routes=cluster_data.route_table_version(console.gateway),
    )
