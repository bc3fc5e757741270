"""Live tail: matching records arrive as server-sent events while they are stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from sv_log.main import create_app
from tests.helpers import grant
from tests.sv_log.conftest import READER, TRACE, reader, record, serving, ship


async def _events(lines: AsyncIterator[str], wanted: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, str] = {}
    async for line in lines:
        if line == "":
            if current.get("event") == "log":
                events.append(orjson.loads(current["data"]))
                if len(events) == wanted:
                    return events
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value
    return events


async def test_tail_streams_matching_records_as_they_are_stored(log_settings: Any) -> None:
    async with (
        serving(grant(create_app(log_settings), READER.user_id, "logs:read")) as base,
        httpx.AsyncClient(base_url=base, timeout=5) as client,
    ):
        target = f"/api/v1/logs/tail?service=sv-user&level=error&trace_id={TRACE}"
        async with client.stream("GET", target, headers=reader(target)) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            lines = resp.aiter_lines()
            assert await anext(lines) == "retry: 3000"  # the tail is registered by now
            batch = [
                record("wanted one", level="error", trace_id=TRACE),
                record("wrong level", level="info", trace_id=TRACE),
                record("wrong service", level="error", trace_id=TRACE, service="sv-money"),
                record("no trace", level="error"),
                record("wanted two", level="ERROR", trace_id=TRACE),
            ]
            assert (await ship(client, batch)).status_code == 202
            events = await asyncio.wait_for(_events(lines, 2), 5)
        assert [e["message"] for e in events] == ["wanted one", "wanted two"]
        assert all(e["id"] for e in events)
