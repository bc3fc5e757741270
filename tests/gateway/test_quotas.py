"""Quota admission (gateway_api.security.quotas) on a real Redis, with an injected clock.

Two :class:`Quotas` objects sharing one Redis are two gateways: the Lua script makes
them one limit. The clock is injected, so rates and day boundaries are exact and the
tests take no wall-clock time to drive 30 req/s for 10 s or to roll a day over.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from edgelib.identity import Identity
from gateway_api.problems import QuotaExceeded
from gateway_api.routing.table import Route
from gateway_api.security.quotas import Quotas
from tests.conftest import REDIS_URL
from tests.e2e.servers import OwnRedis


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def app_identity(app: str, tenant: str = "acme") -> Identity:
    return Identity(app, app, "east", "sid-" + app, "service", tenant=tenant, app=app)


ROUTE = Route(prefix="/api/v1/echo", service="echo", access="public", label="* /api/v1/echo")
MIDNIGHT = datetime(2026, 12, 7, tzinfo=UTC).timestamp()


def route_name() -> str:
    return ROUTE.name


@pytest_asyncio.fixture
async def two_gateways() -> AsyncIterator[tuple[Quotas, Quotas, Clock]]:
    clock = Clock(MIDNIGHT + 12 * 3600)
    prefix = f"test:{uuid.uuid4().hex}:"  # the two share counters no other run has
    first = Quotas(REDIS_URL, clock=clock, key_prefix=prefix)
    second = Quotas(REDIS_URL, clock=clock, key_prefix=prefix)
    yield first, second, clock
    await first.close()
    await second.close()


def install(quotas: list[Quotas], *items: dict[str, Any]) -> None:
    for q in quotas:
        q.install(1, list(items))


async def admitted(quotas: Quotas, identity: Identity | None) -> bool:
    found = quotas.applicable(ROUTE, identity)
    assert found is not None
    try:
        await quotas.admit(found)
    except QuotaExceeded:
        return False
    return True


async def test_app_qps_is_one_limit_across_two_gateways(two_gateways: Any) -> None:
    """QPS 10, driven at 30 req/s through both for 10 s: 100 (+ the burst of one) pass."""
    first, second, clock = two_gateways
    app = f"app_{uuid.uuid4().hex[:8]}"
    install([first, second], {"kind": "app", "tenant": "acme", "target": app, "qps": 10})
    start = clock.now
    accepted = 0
    for i in range(300):
        clock.now = start + i / 30
        gateway = first if i % 2 else second
        accepted += await admitted(gateway, app_identity(app))
    assert 100 <= accepted <= 102, accepted
    assert first.admitted + second.admitted == accepted
    assert first.admitted > 40
    assert second.admitted > 40


async def test_refusal_carries_retry_after_and_ratelimit_fields(two_gateways: Any) -> None:
    first, _, _ = two_gateways
    app = f"app_{uuid.uuid4().hex[:8]}"
    install([first], {"kind": "app", "tenant": "acme", "target": app, "qps": 2, "burst": 1})
    identity = app_identity(app)
    assert await admitted(first, identity)
    assert await admitted(first, identity)  # the burst of one interval
    found = first.applicable(ROUTE, identity)
    with pytest.raises(QuotaExceeded) as refused:
        await first.admit(found)
    problem = refused.value
    assert problem.status_code == 429
    assert problem.type_slug == "quota-exceeded"
    assert problem.headers["Retry-After"] == "1"
    assert problem.headers["RateLimit-Policy"] == '"app-qps";q=2;w=1'
    assert problem.headers["RateLimit"] == '"app-qps";r=0;t=1'


async def test_app_qpd_refuses_the_501st_until_the_day_rolls_over(two_gateways: Any) -> None:
    first, second, clock = two_gateways
    app = f"app_{uuid.uuid4().hex[:8]}"
    install([first, second], {"kind": "app", "tenant": "acme", "target": app, "qpd": 500})
    clock.now = MIDNIGHT + 86400 - 600  # 23:50 UTC
    identity = app_identity(app)
    for i in range(500):
        assert await admitted(first if i % 2 else second, identity), i
    with pytest.raises(QuotaExceeded) as refused:
        await first.admit(first.applicable(ROUTE, identity))
    assert refused.value.headers["Retry-After"] == "600"  # until midnight UTC
    assert refused.value.headers["RateLimit-Policy"] == '"app-qpd";q=500;w=86400'
    clock.now = MIDNIGHT + 86400 - 0.001
    assert not await admitted(second, identity)
    clock.now = MIDNIGHT + 86400  # the next day
    assert await admitted(second, identity)
    assert await admitted(first, identity)


async def test_qpd_day_follows_the_quotas_timezone(two_gateways: Any) -> None:
    """Shanghai's day ends at 16:00 UTC."""
    first, _, clock = two_gateways
    app = f"app_{uuid.uuid4().hex[:8]}"
    install(
        [first],
        {"kind": "app", "tenant": "acme", "target": app, "qpd": 1, "timezone": "Asia/Shanghai"},
    )
    identity = app_identity(app)
    clock.now = MIDNIGHT + 15 * 3600  # 23:00 in Shanghai
    assert await admitted(first, identity)
    assert not await admitted(first, identity)
    clock.now = MIDNIGHT + 16 * 3600  # midnight in Shanghai
    assert await admitted(first, identity)


async def test_concurrency_limit_counts_leases_until_released(two_gateways: Any) -> None:
    first, second, _ = two_gateways
    tenant = f"t{uuid.uuid4().hex[:8]}"
    install([first, second], {"kind": "tenant", "tenant": tenant, "target": tenant,
                              "concurrency": 2})  # fmt: skip
    user = Identity("u1", "u1", "east", "s1", "web", tenant=tenant)
    one = await first.admit(first.applicable(ROUTE, user))
    two = await second.admit(second.applicable(ROUTE, user))
    assert one is not None
    assert two is not None
    with pytest.raises(QuotaExceeded) as refused:
        await first.admit(first.applicable(ROUTE, user))
    assert refused.value.headers["RateLimit-Policy"] == '"tenant-concurrency";q=2'
    one.release()
    await _settle(first)
    three = await second.admit(second.applicable(ROUTE, user))
    assert three is not None


async def test_route_and_service_flow_limits_apply_to_every_caller(two_gateways: Any) -> None:
    first, _, clock = two_gateways
    service = f"svc-{uuid.uuid4().hex[:6]}"
    route = Route(prefix="/x", service=service, access="public", label="* /x")
    install([first], {"kind": "service", "target": service, "qps": 1, "burst": 1})
    for caller in (None, app_identity("a1"), Identity("u", "u", "east", "s", "web")):
        clock.now += 10
        assert await first.admit(first.applicable(route, caller)) is None
        assert await first.admit(first.applicable(route, caller)) is None  # burst
        with pytest.raises(QuotaExceeded) as refused:
            await first.admit(first.applicable(route, caller))
        assert refused.value.headers["RateLimit-Policy"] == f'"service-{service}-qps";q=1;w=1'


async def test_a_refusal_takes_nothing_from_the_other_limits(two_gateways: Any) -> None:
    """The app's QPS refuses: the tenant's day count is untouched (all or nothing)."""
    first, _, clock = two_gateways
    tenant, app = f"t{uuid.uuid4().hex[:8]}", f"app_{uuid.uuid4().hex[:8]}"
    install(
        [first],
        {"kind": "app", "tenant": tenant, "target": app, "qps": 1},
        {"kind": "tenant", "tenant": tenant, "target": tenant, "qpd": 3},
    )
    identity = app_identity(app, tenant)
    assert len(first.applicable(ROUTE, identity) or []) == 2
    results = [await admitted(first, identity) for _ in range(10)]  # same instant
    assert results.count(True) == 2  # QPS 1 with a burst of one
    clock.now += 5
    assert await admitted(first, identity)  # the third of the day: 8 refusals cost nothing
    clock.now += 5
    assert not await admitted(first, identity)


async def test_a_caller_without_quota_finds_none(two_gateways: Any) -> None:
    first, _, _ = two_gateways
    assert not first.armed
    assert first.applicable(ROUTE, app_identity("x")) is None
    install([first], {"kind": "app", "tenant": "acme", "target": "other", "qps": 1})
    assert first.armed
    assert first.applicable(ROUTE, app_identity("x")) is None
    assert first.applicable(ROUTE, app_identity("other", tenant="globex")) is None


async def _settle(quotas: Quotas) -> None:
    for task in list(quotas._releases):
        await task


# -- Redis stopped (must-show 6) -----------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    redis = OwnRedis(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


async def test_redis_down_each_quota_falls_back_as_it_says(own_redis: OwnRedis) -> None:
    clock = Clock(MIDNIGHT)
    quotas = Quotas(own_redis.url, clock=clock, retry_redis_after=1.0)
    try:
        quotas.install(
            1,
            [
                {"kind": "app", "tenant": "acme", "target": "local", "qps": 1, "burst": 1},
                {"kind": "app", "tenant": "acme", "target": "open", "qps": 1, "burst": 1,
                 "on_redis_down": "open"},
                {"kind": "app", "tenant": "acme", "target": "closed", "qps": 1,
                 "on_redis_down": "closed"},
            ],
        )  # fmt: skip
        # Redis up: the shared limit.
        assert await admitted(quotas, app_identity("closed"))
        own_redis.stop()
        clock.now += 10
        # local: the same limit, counted in this process.
        assert [await admitted(quotas, app_identity("local")) for _ in range(4)] == [
            True, True, False, False,
        ]  # fmt: skip
        # open: everything passes.
        assert all([await admitted(quotas, app_identity("open")) for _ in range(10)])
        # closed: refused with a 429 and a retry after a second.
        found = quotas.applicable(ROUTE, app_identity("closed"))
        with pytest.raises(QuotaExceeded) as refused:
            await quotas.admit(found)
        assert refused.value.headers["Retry-After"] == "1"
        assert quotas.redis_failures == 1  # one failed call, then a second on fallback
        # Redis back: after the retry delay, the shared counts again.
        own_redis.start()
        clock.now += 2
        assert await admitted(quotas, app_identity("closed"))
        assert quotas.snapshot()["redis"] is True
    finally:
        await quotas.close()
