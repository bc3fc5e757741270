"""Quotas in auth-rbac: set, list, remove, confinement of a tenant's admin, bad input,
and the gateways' feed (version, since, pub/sub announcement)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from auth_rbac.main import create_app
from edgelib.backends import RedisBackend
from edgelib.identity import GATEWAY_SERVICE
from tests.auth_rbac.conftest import AsGateway, AsService, admin_client, rbac_settings
from tests.auth_rbac.test_api import assert_problem
from tests.auth_rbac.test_tenants import make_tenant, tenant_admin
from tests.conftest import REDIS_URL


async def feed(api: httpx.AsyncClient, since: int | None = None) -> dict:  # type: ignore[type-arg]
    params = {} if since is None else {"since": since}
    resp = await api.get("/internal/quotas", params=params, auth=AsService(GATEWAY_SERVICE))
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def test_platform_admin_sets_replaces_lists_and_removes_quotas(
    api: httpx.AsyncClient,
) -> None:
    await make_tenant(api, "acme")
    start = (await feed(api))["version"]
    body = {"kind": "app", "target": "app_1", "tenant": "acme", "qps": 10, "qpd": 500}
    created = await api.put("/api/v1/quotas", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["tenant"] == "acme"
    assert created.json()["qps"] == 10
    replaced = await api.put("/api/v1/quotas", json={**body, "qps": 20})
    assert replaced.status_code == 200
    assert replaced.json()["qps"] == 20
    for quota in (
        {"kind": "tenant", "target": "acme", "concurrency": 50, "timezone": "Asia/Shanghai"},
        {"kind": "route", "target": "* /api/v1/echo", "qps": 100},
        {"kind": "service", "target": "sv-money", "qps": 1000, "on_redis_down": "closed"},
    ):
        assert (await api.put("/api/v1/quotas", json=quota)).status_code == 201
    listed = (await api.get("/api/v1/quotas")).json()
    assert [q["kind"] for q in listed["quotas"]] == ["app", "route", "service", "tenant"]
    assert listed["version"] == start + 5
    document = await feed(api)
    assert document["changed"]
    assert document["version"] == start + 5
    app = next(q for q in document["quotas"] if q["kind"] == "app")
    assert app["timezone"] == "Asia/Shanghai"  # its tenant's day
    assert (await feed(api, since=document["version"])) == {
        "version": document["version"],
        "changed": False,
        "quotas": None,
    }
    resp = await api.delete(
        "/api/v1/quotas", params={"kind": "app", "target": "app_1", "tenant": "acme"}
    )
    assert resp.status_code == 204
    assert_problem(
        await api.delete(
            "/api/v1/quotas", params={"kind": "app", "target": "app_1", "tenant": "acme"}
        ),
        404,
        "quota-not-found",
    )
    assert len((await feed(api))["quotas"]) == 3


async def test_bad_quota_bodies_are_422_problems(api: httpx.AsyncClient) -> None:
    for body in (
        {"kind": "app", "target": "a"},  # no limit
        {"kind": "app", "target": "a", "qps": 0},
        {"kind": "app", "target": "a", "qps": "ten"},
        {"kind": "app", "target": "a b", "qps": 1},
        {"kind": "route", "target": "api/v1/x", "qps": 1},
        {"kind": "planet", "target": "a", "qps": 1},
        {"kind": "app", "target": "a", "qpd": 1, "timezone": "Mars/Olympus"},
        {"kind": "app", "target": "a", "qps": 1, "on_redis_down": "maybe"},
        {"kind": "service", "target": "s", "qps": 1, "tenant": "acme"},
        {"kind": "app", "target": "a", "qps": 1, "extra": True},
    ):
        assert_problem(await api.put("/api/v1/quotas", json=body), 422)
    assert_problem(await api.delete("/api/v1/quotas", params={"kind": "app"}), 422)
    assert_problem(await api.get("/internal/quotas"), 401)


async def test_tenant_admin_sets_only_its_own_apps_quotas(api: httpx.AsyncClient) -> None:
    await make_tenant(api, "acme")
    await make_tenant(api, "globex")
    await tenant_admin(api, "acme", "u-alice")
    await api.put("/api/v1/quotas", json={"kind": "tenant", "target": "acme", "qpd": 10_000})
    await api.put(
        "/api/v1/quotas", json={"kind": "app", "target": "g1", "tenant": "globex", "qps": 5}
    )
    alice = AsGateway("u-alice", tenant="acme")
    mine = await api.put("/api/v1/quotas", json={"kind": "app", "target": "a1", "qps": 3},
                         auth=alice)  # fmt: skip
    assert mine.status_code == 201
    assert mine.json()["tenant"] == "acme"
    for body in (
        {"kind": "app", "target": "g1", "tenant": "globex", "qps": 500},
        {"kind": "tenant", "target": "acme", "qpd": 10**9},
        {"kind": "route", "target": "* /api/v1/echo", "qps": 1},
        {"kind": "service", "target": "sv-user", "qps": 1},
    ):
        assert_problem(
            await api.put("/api/v1/quotas", json=body, auth=alice), 403, "platform-admin-only"
        )
    seen = (await api.get("/api/v1/quotas", params={"tenant": "globex"}, auth=alice)).json()
    assert {(q["kind"], q["target"]) for q in seen["quotas"]} == {("app", "a1"), ("tenant", "acme")}
    assert_problem(
        await api.delete(
            "/api/v1/quotas", params={"kind": "app", "target": "g1", "tenant": "globex"},
            auth=alice,
        ),
        403,
        "platform-admin-only",
    )  # fmt: skip
    # Another tenant's member without the role: the permission check refuses.
    assert_problem(await api.get("/api/v1/quotas", auth=AsGateway("u-bob", tenant="globex")), 403)


async def test_a_change_is_announced_on_the_quota_channel(tmp_path: Path) -> None:
    app = create_app(rbac_settings(tmp_path, redis_url=REDIS_URL))
    backend = RedisBackend(REDIS_URL)
    try:
        subscription = await backend.subscribe("edge:rbac:quotas")
        async with admin_client(app) as api:
            resp = await api.put("/api/v1/quotas", json={"kind": "service", "target": "x",
                                                         "qps": 1})  # fmt: skip
            assert resp.status_code == 201
            version = (await feed(api))["version"]
            messages = aiter(subscription)
            _, message = await asyncio.wait_for(anext(messages), 5)
            assert int(message) == version
        await subscription.close()
    finally:
        await backend.close()
