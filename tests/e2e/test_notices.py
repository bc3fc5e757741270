"""Notices through the real stack: tokens from auth-jwt, the gateway's WebSocket and SSE
proxying and regional routing, the admin permission, and the event contract."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from edgelib.events import TRANSFER_RECEIVED, EventPublisher, HttpEventSink, PlatformEvent
from tests.e2e.conftest import PORT_SHIFT, Stack

pytestmark = pytest.mark.e2e
measured = logging.getLogger("tests.measured")

PASSWORD = "correct-horse-battery-9"
NOTICE_URLS = {
    "east": f"http://127.0.0.1:{7221 + PORT_SHIFT}",
    "west": f"http://127.0.0.1:{7321 + PORT_SHIFT}",
}


def _subject(token: str) -> str:
    payload = token.split(".")[1]
    return str(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


async def _login(
    http: httpx.AsyncClient, stack: Stack, username: str, password: str, client_type: str = "web"
) -> dict[str, str]:
    resp = await http.post(
        stack.public + "/api/v1/auth/login",
        json={"username": username, "password": password, "client_type": client_type},
    )
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    return {"authorization": f"Bearer {token}", "user_id": _subject(token), "username": username}


async def _register(http: httpx.AsyncClient, stack: Stack, region: str) -> dict[str, str]:
    username = f"notice{uuid.uuid4().hex[:10]}"
    created = await http.post(
        stack.public + "/api/v1/users",
        json={"username": username, "password": PASSWORD, "region": region},
    )
    assert created.status_code == 201, created.text
    return await _login(http, stack, username, PASSWORD)


def _auth(caller: dict[str, str]) -> dict[str, str]:
    return {"authorization": caller["authorization"]}


async def _sse(lines: AsyncIterator[str], kind: str) -> dict[str, str]:
    current: dict[str, str] = {}
    async for line in lines:
        if line == "":
            if current.get("event") == kind:
                return current
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = value
    raise AssertionError("stream ended")


@pytest.mark.parametrize("region", ["east", "west"])
async def test_transfer_event_reaches_clients_connected_through_the_gateway_within_1s(
    stack: Stack, region: str
) -> None:
    async with (
        httpx.AsyncClient(timeout=10) as http,
        aiohttp.ClientSession() as session,
    ):
        alice = await _register(http, stack, region)
        ws = await session.ws_connect(
            stack.public.replace("http", "ws", 1) + "/api/v1/notices/ws", headers=_auth(alice)
        )
        assert (await ws.receive_json(timeout=5))["type"] == "ready"
        async with http.stream(
            "GET", stack.public + "/api/v1/notices/stream", headers=_auth(alice)
        ) as sse:
            assert sse.status_code == 200
            lines = sse.aiter_lines()
            await asyncio.wait_for(_sse(lines, "ready"), 5)

            transfer_id = uuid.uuid4().hex
            async with EventPublisher(
                HttpEventSink(NOTICE_URLS, stack.signer("sv-money"))
            ) as publisher:
                started = time.perf_counter()
                publisher.publish(
                    PlatformEvent(
                        type=TRANSFER_RECEIVED,
                        user_id=alice["user_id"],
                        region=region,
                        data={
                            "amount": "25.00",
                            "currency": "USD",
                            "from_username": "bob",
                            "transfer_id": transfer_id,
                        },
                        id=f"transfer-received:{transfer_id}",
                        source="sv-money",
                    )
                )
                pushed = await ws.receive_json(timeout=1.0)
                ws_latency = time.perf_counter() - started
                streamed = await asyncio.wait_for(_sse(lines, "notice"), 1.0)
                sse_latency = time.perf_counter() - started
        await ws.close()

        # Shown with -o log_cli=true -o log_cli_level=INFO.
        measured.info(
            "%s: event to WebSocket %.1f ms, to SSE %.1f ms",
            region,
            ws_latency * 1000,
            sse_latency * 1000,
        )
        assert ws_latency < 1.0
        assert sse_latency < 1.0
        notice = pushed["notice"]
        assert notice["title"] == "You received 25.00 USD"
        assert orjson.loads(streamed["data"])["notice"]["id"] == notice["id"]

        inbox = await http.get(stack.public + "/api/v1/notices", headers=_auth(alice))
        assert inbox.status_code == 200
        assert inbox.headers["x-edge-instance"].startswith(f"sv-notice-{region}-")
        assert [n["id"] for n in inbox.json()["items"]] == [notice["id"]]
        count = await http.get(stack.public + "/api/v1/notices/unread-count", headers=_auth(alice))
        assert count.json() == {"unread": 1}
        read = await http.post(stack.public + "/api/v1/notices/read-all", headers=_auth(alice))
        assert read.json() == {"marked": 1}


async def test_admin_routes_need_notices_admin_at_the_gateway(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        alice = await _register(http, stack, "east")
        send: dict[str, Any] = {
            "user_id": alice["user_id"],
            "category": "general",
            "variables": {"title": "Welcome", "body": "Glad you are here"},
        }
        url = stack.public + "/api/v1/notices/admin/send"
        refused = await http.post(url, json=send, headers=_auth(alice))
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        unauthenticated = await http.post(url, json=send)
        assert unauthenticated.status_code == 401

        password = (stack.var_dir / "admin-password").read_text().strip()
        admin = await _login(http, stack, "admin", password)
        grant = {"sub": "admin", "obj": "notices", "act": "admin"}
        granted = await http.post(
            stack.public + "/api/v1/rbac/policies", json=grant, headers=_auth(admin)
        )
        assert granted.status_code in (200, 201), granted.text
        deadline = time.monotonic() + 5
        while True:
            sent = await http.post(url, json=send, headers=_auth(admin))
            if sent.status_code != 403 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert sent.status_code == 202, sent.text
        assert {d["channel"]: d["status"] for d in sent.json()["deliveries"]}["in_app"] == "sent"
        inbox = await http.get(stack.public + "/api/v1/notices", headers=_auth(alice))
        assert [n["title"] for n in inbox.json()["items"]] == ["Welcome"]
        # An admin (east) sending to a user of the west region: west's sv-notice gets it.
        bob = await _register(http, stack, "west")
        west = await http.post(
            url,
            json={"username": bob["username"], "category": "general"}
            | {"variables": {"title": "Hello west", "body": "from the east"}},
            headers=_auth(admin),
        )
        assert west.status_code == 202, west.text
        bob_inbox = await http.get(stack.public + "/api/v1/notices", headers=_auth(bob))
        assert bob_inbox.headers["x-edge-instance"].startswith("sv-notice-west-")
        assert [n["title"] for n in bob_inbox.json()["items"]] == ["Hello west"]
        dead = await http.get(
            stack.public + "/api/v1/notices/admin/dead-letters", headers=_auth(admin)
        )
        assert dead.status_code == 200
        assert (await http.get(stack.public + "/api/v1/notices/about")).status_code == 200


async def test_sign_in_on_another_client_type_reaches_the_user_as_a_critical_notice(
    stack: Stack,
) -> None:
    async with httpx.AsyncClient(timeout=10) as http, aiohttp.ClientSession() as session:
        web = await _register(http, stack, "west")
        # Turning everything off does not matter: the category is critical.
        muted = await http.put(
            stack.public + "/api/v1/notices/preferences/categories/*",
            json={"channels": {"realtime": False, "in_app": False}},
            headers=_auth(web),
        )
        assert muted.status_code == 200, muted.text
        # A second web login ends the first web session; that is no new client type.
        again_on_web = await _login(http, stack, web["username"], PASSWORD, "web")
        ws = await session.ws_connect(
            stack.public.replace("http", "ws", 1) + "/api/v1/notices/ws",
            headers=_auth(again_on_web),
        )
        assert (await ws.receive_json(timeout=5))["type"] == "ready"
        started = time.perf_counter()
        await _login(http, stack, web["username"], PASSWORD, "app")
        pushed = await ws.receive_json(timeout=2.0)
        latency = time.perf_counter() - started
        await ws.close()

        measured.info("sign-in on app to the web client's WebSocket: %.1f ms", latency * 1000)
        assert pushed["type"] == "notice"
        assert pushed["notice"]["category"] == "security.new_sign_in"
        assert pushed["notice"]["data"]["client_type"] == "app"
        assert latency < 1.0
        inbox = await http.get(stack.public + "/api/v1/notices", headers=_auth(again_on_web))
        assert [n["category"] for n in inbox.json()["items"]] == ["security.new_sign_in"]
