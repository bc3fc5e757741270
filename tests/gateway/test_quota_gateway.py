"""Quotas through the gateway's real listeners: flow limits per route and per service,
concurrency, the 429 document, and a Redis of the test's own that it stops.

The quotas are installed into the gateway directly (auth-rbac's feed has its own
tests: tests/auth_rbac/test_quotas.py, and the two-gateway run tests/e2e/test_quotas.py).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from edgelib.backends import RedisBackend
from gateway_api.security.authz import AuthRbac
from gateway_api.security.quota_feed import QuotaFollower
from gateway_api.security.quotas import Quotas
from tests.conftest import REDIS_URL
from tests.e2e.servers import OwnRedis
from tests.gateway.conftest import GatewayUnderTest, start_gateway
from tests.gateway.test_authz import SIGNER, rbac_service

ECHO = "* /api/v1/echo"
SLOW = "* /api/v1/echo/slow"


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[GatewayUnderTest]:
    async for g in start_gateway(tmp_path, {"a": 1}, redis_url=REDIS_URL):
        # Counters of their own: earlier runs' keys on the shared Redis count nothing.
        g.gateway.security.quotas.key_prefix = f"test:{uuid.uuid4().hex}:"
        yield g


def install(gw: GatewayUnderTest, *items: dict[str, Any]) -> None:
    quotas = gw.gateway.security.quotas
    quotas.install(quotas.book.version + 1, list(items))


async def test_route_flow_limit_answers_429_problem_with_ratelimit_fields(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    install(gw, {"kind": "route", "target": ECHO, "qps": 1, "burst": 1})
    answers = [await client.get(gw.url + "/api/v1/echo") for _ in range(6)]
    statuses = Counter(r.status_code for r in answers)
    assert statuses[200] in (2, 3), statuses
    assert statuses[200] + statuses[429] == 6, statuses
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/quota-exceeded")
    assert refused.json()["limit"] == f"route-{ECHO}-qps"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-policy"] == f'"route-{ECHO}-qps";q=1;w=1'
    assert refused.headers["ratelimit"].startswith(f'"route-{ECHO}-qps";r=0;t=')
    # Another route of the same service has no flow limit.
    assert (await client.get(gw.url + "/api/v1/echo/slow?s=0")).status_code == 200


async def test_service_concurrency_limit_holds_a_lease_for_the_whole_request(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    install(gw, {"kind": "service", "target": "echo", "concurrency": 1})
    slow = asyncio.create_task(client.get(gw.url + "/api/v1/echo/slow?s=1"))
    await asyncio.sleep(0.4)
    busy = await client.get(gw.url + "/api/v1/echo")
    assert busy.status_code == 429, busy.text
    assert busy.headers["ratelimit-policy"] == '"service-echo-concurrency";q=1'
    assert (await slow).status_code == 200
    for _ in range(50):  # the lease goes back to Redis just after the answer
        answer = await client.get(gw.url + "/api/v1/echo")
        if answer.status_code == 200:
            break
        await asyncio.sleep(0.02)
    assert answer.status_code == 200
    assert (await client.get(gw.url + "/api/v1/echo")).status_code == 200


async def test_a_caller_without_quota_is_not_counted(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    install(gw, {"kind": "service", "target": "other", "qps": 1})
    statuses = {(await client.get(gw.url + "/api/v1/echo")).status_code for _ in range(10)}
    assert statuses == {200}
    assert gw.gateway.security.quotas.admitted == 0


async def test_qpd_through_the_gateway_refuses_the_501st_until_the_next_day(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    """The gateway's quota clock is injected: 23:59:30 UTC, 500 pass, the 501st is 429
    (Retry-After: the 30 s left of the day), and at midnight it passes again."""
    day = 86400 * (int(time.time()) // 86400 + 10)
    now = [day - 30.0]
    gw.gateway.security.quotas.clock = lambda: now[0]
    install(gw, {"kind": "route", "target": ECHO, "qpd": 500})
    statuses = Counter()
    for _ in range(500):
        statuses[(await client.get(gw.url + "/api/v1/echo")).status_code] += 1
    assert statuses == Counter({200: 500}), statuses
    refused = await client.get(gw.url + "/api/v1/echo")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"
    assert refused.headers["ratelimit-policy"] == f'"route-{ECHO}-qpd";q=500;w=86400'
    now[0] = day  # midnight UTC: a new day's count
    assert (await client.get(gw.url + "/api/v1/echo")).status_code == 200


async def test_redis_stopped_quotas_fall_back_and_nothing_is_a_5xx(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    """must-show 6: the route's quota counts locally, the service's fails open, and a
    fail-closed quota refuses with 429: no answer is a 5xx while Redis is away."""
    redis = OwnRedis(tmp_path)
    redis.start()
    try:
        async for gw in start_gateway(tmp_path, {"a": 1}, redis_url=redis.url):
            install(
                gw,
                {"kind": "route", "target": ECHO, "qps": 5, "on_redis_down": "local"},
                {"kind": "service", "target": "echo", "qps": 1, "on_redis_down": "open"},
                {"kind": "route", "target": SLOW, "qps": 100, "on_redis_down": "closed"},
            )
            assert (await client.get(gw.url + "/api/v1/echo/slow?s=0")).status_code == 200
            redis.stop()
            echo = Counter()
            slow = Counter()
            for _ in range(40):
                echo[(await client.get(gw.url + "/api/v1/echo")).status_code] += 1
                slow[(await client.get(gw.url + "/api/v1/echo/slow?s=0")).status_code] += 1
            # Local QPS 5 in this process (the open service quota lets the rest through):
            # the first two at once (burst), then one per 200 ms.
            assert set(echo) == {200, 429}, echo
            assert echo[200] >= 2, echo
            assert slow == Counter({429: 40}), slow
            snapshot = (await gw.cluster())["quotas"]
            assert snapshot["redis"] is False
            assert snapshot["fallbacks"] >= 80
            redis.start()
            await asyncio.sleep(1.1)  # the retry delay
            assert (await client.get(gw.url + "/api/v1/echo/slow?s=0")).status_code == 200
    finally:
        redis.stop()


# -- a change reaches every gateway within a second ------------------------------------


async def test_a_quota_change_reaches_gateways_by_pubsub_and_by_poll(tmp_path: Path) -> None:
    """Real auth-rbac on a port; one follower hears the version on Redis pub/sub (its
    poll is 30 s), the other only polls (0.5 s): both hold the new quota within 1 s."""
    async with (
        rbac_service(tmp_path, redis_url=REDIS_URL) as rbac,
        aiohttp.ClientSession() as session,
    ):
        backend = RedisBackend(REDIS_URL)
        heard, polled = Quotas(), Quotas()
        followers = [
            QuotaFollower(heard, AuthRbac([rbac.url], SIGNER), backend=backend, poll_interval=30),
            QuotaFollower(polled, AuthRbac([rbac.url], SIGNER), backend=None, poll_interval=0.5),
        ]
        try:
            for follower in followers:
                await follower.start(session)
            await asyncio.sleep(0.3)  # the subscription is made
            for limit in (10, 20):
                body = {"kind": "service", "target": "echo", "qps": limit}
                assert (await rbac.api.put("/api/v1/quotas", json=body)).status_code in (200, 201)
                changed = time.monotonic()
                while not all(
                    q.book.services.get("echo") is not None and q.book.services["echo"].qps == limit
                    for q in (heard, polled)
                ):
                    assert time.monotonic() - changed < 1.0, (
                        heard.book.version,
                        polled.book.version,
                    )
                    await asyncio.sleep(0.01)
            assert heard.armed
            assert polled.armed
            gone = await rbac.api.delete(
                "/api/v1/quotas", params={"kind": "service", "target": "echo"}
            )
            assert gone.status_code == 204
            changed = time.monotonic()
            while heard.armed or polled.armed:
                assert time.monotonic() - changed < 1.0
                await asyncio.sleep(0.01)
        finally:
            for follower in followers:
                await follower.stop()
            await backend.close()
