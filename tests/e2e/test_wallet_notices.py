"""A real transfer reaches the payee's realtime connection within 1 s, and stays in the inbox."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.test_wallet import admin_caller, bearer, register_and_login

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("payer_region", "payee_region"), [("east", "east"), ("east", "west")])
def test_transfer_reaches_the_connected_payee_within_1s_and_stays_in_the_inbox(
    stack: Stack, client: httpx.Client, payer_region: str, payee_region: str
) -> None:
    payer = register_and_login(stack, client, payer_region)
    payee = register_and_login(stack, client, payee_region)
    admin = admin_caller(stack, client)
    topup = {"username": payer["username"], "amount": 5_000, "currency": "USD"}
    made = client.post(
        stack.public + "/api/v1/wallet/topups", json=topup, headers=bearer(admin, uuid.uuid4().hex)
    )
    assert made.status_code == 201, made.text

    async def scenario() -> tuple[dict, float]:  # type: ignore[type-arg]
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(
                stack.public.replace("http", "ws", 1) + "/api/v1/notices/ws",
                headers=bearer(payee),
            )
            assert (await ws.receive_json(timeout=5))["type"] == "ready"
            pay = {"to_username": payee["username"], "amount": 1_250, "currency": "USD"}
            started = time.perf_counter()
            async with httpx.AsyncClient(timeout=10) as http:
                sent = await http.post(
                    stack.public + "/api/v1/wallet/transfers",
                    json=pay,
                    headers=bearer(payer, uuid.uuid4().hex),
                )
            assert sent.status_code == 201, sent.text
            pushed = await ws.receive_json(timeout=1.0)
            latency = time.perf_counter() - started
            await ws.close()
            return pushed, latency

    pushed, latency = asyncio.run(scenario())
    assert latency < 1.0, latency
    notice = pushed["notice"]
    assert notice["title"] == "You received 12.50 USD"
    assert payer["username"] in notice["body"]
    inbox = client.get(stack.public + "/api/v1/notices", headers=bearer(payee))
    assert inbox.status_code == 200
    assert [n["id"] for n in inbox.json()["items"]] == [notice["id"]]
