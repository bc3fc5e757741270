"""Tenants in auth-rbac: CRUD, members, disabling, and isolation between tenants' domains."""

from __future__ import annotations

from typing import Any

import httpx

from tests.auth_rbac.conftest import AsGateway, AsService
from tests.auth_rbac.test_api import assert_problem, enforce


async def make_tenant(api: httpx.AsyncClient, tenant: str) -> dict[str, Any]:
    resp = await api.post("/api/v1/tenants", json={"id": tenant, "name": f"Tenant {tenant}"})
    assert resp.status_code == 201, resp.text
    doc: dict[str, Any] = resp.json()
    return doc


async def tenant_admin(api: httpx.AsyncClient, tenant: str, user: str) -> None:
    """``user`` joins ``tenant`` and gets its built-in admin role there."""
    resp = await api.post(f"/api/v1/tenants/{tenant}/members", json={"user": user})
    assert resp.status_code == 201, resp.text
    resp = await api.post(
        "/api/v1/rbac/assignments", json={"user": user, "role": "admin", "dom": tenant}
    )
    assert resp.status_code == 201, resp.text


async def test_platform_admin_creates_lists_renames_and_refuses_duplicates(
    api: httpx.AsyncClient,
) -> None:
    created = await make_tenant(api, "acme")
    assert created["id"] == "acme"
    assert created["disabled"] is False
    assert_problem(
        await api.post("/api/v1/tenants", json={"id": "acme", "name": "again"}),
        409,
        "tenant-exists",
    )
    assert_problem(
        await api.post("/api/v1/tenants", json={"id": "default", "name": "x"}), 409, "tenant-exists"
    )
    await make_tenant(api, "globex")
    listed = [t["id"] for t in (await api.get("/api/v1/tenants")).json()]
    assert listed == ["acme", "globex"]
    renamed = await api.patch("/api/v1/tenants/acme", json={"name": "ACME Corp"})
    assert renamed.status_code == 200
    assert (await api.get("/api/v1/tenants/acme")).json()["name"] == "ACME Corp"
    assert_problem(await api.get("/api/v1/tenants/nope"), 404, "tenant-not-found")
    # The tenant's own admin role administers its domain, and nothing in default.
    role = (await api.get("/api/v1/rbac/roles/admin", params={"dom": "acme"})).json()
    assert role["builtin"] is True
    assert {(p["obj"], p["act"]) for p in role["permissions"]} == {
        ("rbac", "admin"),
        ("apps", "admin"),
        ("tenants", "admin"),
        ("stats", "read"),
    }


async def test_bad_tenant_bodies_are_422_problems(api: httpx.AsyncClient) -> None:
    for body in (
        {"id": "has space", "name": "x"},
        {"id": "a:b", "name": "x"},
        {"id": "ok"},
        {"id": "ok", "name": ""},
        {"id": "ok", "name": "x", "extra": 1},
    ):
        assert_problem(await api.post("/api/v1/tenants", json=body), 422)
    assert_problem(await api.patch("/api/v1/tenants/acme", json={"disabled": "maybe"}), 422)


async def test_tenant_admin_cannot_see_or_touch_another_tenants_roles(
    api: httpx.AsyncClient,
) -> None:
    await make_tenant(api, "acme")
    await make_tenant(api, "globex")
    await tenant_admin(api, "acme", "u-alice")
    alice = AsGateway("u-alice", tenant="acme")

    own = await api.post("/api/v1/rbac/roles", json={"name": "auditor", "dom": "acme"}, auth=alice)
    assert own.status_code == 201, own.text
    assert (
        await api.get("/api/v1/rbac/roles", params={"dom": "acme"}, auth=alice)
    ).status_code == 200
    for dom in ("globex", "default"):
        assert_problem(
            await api.get("/api/v1/rbac/roles", params={"dom": dom}, auth=alice),
            403,
            "outside-tenant",
        )
        assert_problem(
            await api.post(
                "/api/v1/rbac/assignments",
                json={"user": "u-alice", "role": "admin", "dom": dom},
                auth=alice,
            ),
            403,
            "outside-tenant",
        )
        assert_problem(
            await api.post(
                "/api/v1/rbac/enforce/batch",
                json={"requests": [{"sub": "u-x", "dom": dom, "obj": "a", "act": "b"}]},
                auth=alice,
            ),
            403,
            "outside-tenant",
        )
    # Another tenant does not exist for her; tenants are created by the platform only.
    assert_problem(await api.get("/api/v1/tenants/globex", auth=alice), 404, "tenant-not-found")
    assert_problem(
        await api.post("/api/v1/tenants/globex/members", json={"user": "u-alice"}, auth=alice),
        404,
        "tenant-not-found",
    )
    assert [t["id"] for t in (await api.get("/api/v1/tenants", auth=alice)).json()] == ["acme"]
    assert_problem(
        await api.post("/api/v1/tenants", json={"id": "mine", "name": "x"}, auth=alice),
        403,
        "platform-admin-only",
    )
    assert_problem(
        await api.patch("/api/v1/tenants/acme", json={"disabled": True}, auth=alice),
        403,
        "platform-admin-only",
    )
    # Her role in acme grants nothing when her active tenant is globex, nor in default.
    for tenant in ("globex", "default"):
        assert_problem(
            await api.get(
                "/api/v1/rbac/roles", params={"dom": tenant}, auth=AsGateway("u-alice", tenant)
            ),
            403,
        )
        assert_problem(await api.get("/api/v1/tenants", auth=AsGateway("u-alice", tenant)), 403)


async def test_disabling_a_tenant_allows_nothing_in_its_domain_until_enabled(
    api: httpx.AsyncClient,
) -> None:
    await make_tenant(api, "acme")
    await tenant_admin(api, "acme", "u-alice")
    alice = AsGateway("u-alice", tenant="acme")
    assert await enforce(api, "u-alice", "rbac", "admin", dom="acme")

    disabled = await api.patch("/api/v1/tenants/acme", json={"disabled": True})
    assert disabled.json()["disabled"] is True
    assert not await enforce(api, "u-alice", "rbac", "admin", dom="acme")
    assert_problem(await api.get("/api/v1/rbac/roles", params={"dom": "acme"}, auth=alice), 403)
    # The rules are kept, only left out of the policy: enabling brings them back.
    await api.patch("/api/v1/tenants/acme", json={"disabled": False})
    assert await enforce(api, "u-alice", "rbac", "admin", dom="acme")
    assert (
        await api.get("/api/v1/rbac/roles", params={"dom": "acme"}, auth=alice)
    ).status_code == 200


async def test_removing_a_member_takes_their_roles_in_that_tenant_only(
    api: httpx.AsyncClient,
) -> None:
    await make_tenant(api, "acme")
    await make_tenant(api, "globex")
    await tenant_admin(api, "acme", "u-bob")
    await tenant_admin(api, "globex", "u-bob")
    again = await api.post("/api/v1/tenants/acme/members", json={"user": "u-bob"})
    assert again.status_code == 200
    members = (await api.get("/api/v1/tenants/acme/members")).json()["members"]
    assert [m["user"] for m in members] == ["u-bob"]

    assert (await api.delete("/api/v1/tenants/acme/members/u-bob")).status_code == 204
    assert not await enforce(api, "u-bob", "rbac", "admin", dom="acme")
    assert await enforce(api, "u-bob", "rbac", "admin", dom="globex")
    assert_problem(await api.delete("/api/v1/tenants/acme/members/u-bob"), 404, "member-not-found")


async def test_auth_jwt_asks_tenant_status_and_no_other_service_may(
    api: httpx.AsyncClient,
) -> None:
    await make_tenant(api, "acme")
    await api.post("/api/v1/tenants/acme/members", json={"user": "u-carol"})
    jwt = AsService("auth-jwt")

    async def status(tenant: str, user: str) -> dict[str, Any]:
        resp = await api.get(f"/internal/tenants/{tenant}/status", params={"user": user}, auth=jwt)
        assert resp.status_code == 200, resp.text
        doc: dict[str, Any] = resp.json()
        return doc

    assert await status("acme", "u-carol") == {
        "tenant": "acme",
        "exists": True,
        "disabled": False,
        "member": True,
    }
    assert (await status("acme", "u-dave"))["member"] is False
    assert (await status("nope", "u-carol"))["exists"] is False
    assert (await status("default", "u-dave"))["member"] is True
    await api.patch("/api/v1/tenants/acme", json={"disabled": True})
    assert (await status("acme", "u-carol"))["disabled"] is True
    refused = await api.get("/internal/tenants/acme/status", auth=AsService("sv-user"))
    assert refused.status_code == 403
    unsigned = await api.get("/internal/tenants/acme/status", auth=None)
    assert unsigned.status_code == 401


async def test_a_user_without_tenants_admin_is_refused(api: httpx.AsyncClient) -> None:
    assert_problem(await api.get("/api/v1/tenants", auth=AsGateway("u-plain")), 403)
    assert_problem(await api.get("/api/v1/tenants", auth=None), 401)
