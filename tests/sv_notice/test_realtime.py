"""Realtime push: a transfer event reaches the user's connected clients (WebSocket and SSE)
within a second, through the event contract of ``edgelib.events``, and stays in the inbox."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from edgelib.events import TRANSFER_RECEIVED, EventPublisher, HttpEventSink, PlatformEvent
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from sv_notice.main import create_app
from tests.helpers import grant
from tests.sv_notice.conftest import (
    TRANSFER_VARS,
    cleanup,
    gateway_headers,
    new_user,
    serving,
    settings_for,
)

STREAM = "/api/v1/notices/stream"
WS = "/api/v1/notices/ws"


async def _sse_events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, str]]:
    current: dict[str, str] = {}
    async for line in lines:
        if line == "":
            if current:
                yield current
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value


async def _next_sse(events: AsyncIterator[dict[str, str]], kind: str) -> dict[str, str]:
    async for event in events:
        if event.get("event") == kind:
            return event
    raise AssertionError("stream ended")


async def test_transfer_reaches_connected_clients_within_1s_and_stays_in_the_inbox(
    flavour: str, tmp_path: Path
) -> None:
    settings = settings_for(flavour, tmp_path)
    user, other = new_user("alice"), new_user("carol")
    money = ServiceSigner("sv-money", DEV_SERVICE_SECRET)
    try:
        async with (
            serving(create_app(settings)) as base,
            aiohttp.ClientSession() as session,
            httpx.AsyncClient(base_url=base, timeout=10) as http,
        ):
            ws_url = base.replace("http", "ws", 1) + WS
            ws = await session.ws_connect(ws_url, headers=gateway_headers("GET", WS, user))
            assert (await ws.receive_json(timeout=5))["type"] == "ready"
            other_ws = await session.ws_connect(ws_url, headers=gateway_headers("GET", WS, other))
            assert (await other_ws.receive_json(timeout=5))["type"] == "ready"
            sse_headers = gateway_headers("GET", STREAM, user)
            async with http.stream("GET", STREAM, headers=sse_headers) as sse:
                assert sse.status_code == 200
                assert sse.headers["content-type"].startswith("text/event-stream")
                events = _sse_events(sse.aiter_lines())
                await asyncio.wait_for(_next_sse(events, "ready"), 5)

                async with EventPublisher(HttpEventSink({"east": base}, money)) as publisher:
                    transfer_id = uuid.uuid4().hex
                    event = PlatformEvent(
                        type=TRANSFER_RECEIVED,
                        user_id=user.user_id,
                        region="east",
                        data=TRANSFER_VARS | {"transfer_id": transfer_id},
                        id=f"transfer-received:{transfer_id}",
                        source="sv-money",
                    )
                    started = time.perf_counter()
                    assert publisher.publish(event) is True
                    publish_took = time.perf_counter() - started
                    pushed = await ws.receive_json(timeout=1.0)
                    ws_latency = time.perf_counter() - started
                    streamed = await asyncio.wait_for(_next_sse(events, "notice"), 1.0)
                    sse_latency = time.perf_counter() - started

            assert publish_took < 0.05  # the sender does not wait for sv-notice
            assert ws_latency < 1.0
            assert sse_latency < 1.0
            assert pushed["type"] == "notice"
            assert pushed["notice"]["title"] == "You received 12.50 EUR"
            assert pushed["notice"]["data"]["transfer_id"] == transfer_id
            assert orjson.loads(streamed["data"])["notice"]["id"] == pushed["notice"]["id"]
            assert streamed["id"] == pushed["notice"]["id"]
            with pytest.raises(asyncio.TimeoutError):
                await other_ws.receive_json(timeout=0.3)  # carol's client hears nothing
            await ws.close()
            await other_ws.close()

            inbox_headers = gateway_headers("GET", "/api/v1/notices", user)
            inbox = await http.get("/api/v1/notices", headers=inbox_headers)
            [kept] = inbox.json()["items"]
            assert kept["id"] == pushed["notice"]["id"]
            assert kept["read"] is False
    finally:
        await cleanup(settings)


async def test_websocket_without_gateway_identity_is_refused(tmp_path: Path) -> None:
    settings = settings_for("sqlite-memory", tmp_path)
    forged = (
        ServiceSigner("gateway-api", "wrong-secret")
        .to("sv-notice")
        .sign("GET", WS, None, identity=new_user().encode())
    )
    async with serving(create_app(settings)) as base, aiohttp.ClientSession() as session:
        for headers in ({}, forged):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(base.replace("http", "ws", 1) + WS, headers=headers)
            assert refused.value.status == 403


async def test_sse_resumes_from_last_event_id_with_the_missed_notices(tmp_path: Path) -> None:
    settings = settings_for("sqlite-memory", tmp_path)
    user = new_user()
    # The user sends to themself here (notices:admin), which is beside the point.
    app = grant(create_app(settings), user.user_id, "notices:admin")
    async with (
        serving(app) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as http,
    ):
        ids: list[str] = []
        for title in ("one", "two", "three"):
            body: dict[str, Any] = {
                "user_id": user.user_id,
                "category": "general",
                "variables": {"title": title, "body": "b"},
            }
            target = "/api/v1/notices/admin/send"
            resp = await http.post(target, json=body, headers=gateway_headers("POST", target, user))
            ids.append(resp.json()["id"])
        headers = gateway_headers("GET", STREAM, user) | {"last-event-id": ids[0]}
        async with http.stream("GET", STREAM, headers=headers) as sse:
            events = _sse_events(sse.aiter_lines())
            await asyncio.wait_for(_next_sse(events, "ready"), 5)
            missed = [await asyncio.wait_for(_next_sse(events, "notice"), 2) for _ in range(2)]
    assert [e["id"] for e in missed] == ids[1:]
