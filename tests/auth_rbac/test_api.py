"""auth-rbac's API: roles, grants, assignments, reads, safety rules, and its refusals."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth_rbac.conftest import ADMIN, AsGateway, AsService

ROUTES = Path(__file__).parents[2] / "app/gateway-api/gateway_api/routes.toml"
PROBLEM = "application/problem+json"


def route_permissions() -> set[tuple[str, str]]:
    routes = tomllib.loads(ROUTES.read_text())["routes"]
    return {
        tuple(r["access"].split(":"))  # type: ignore[misc]
        for r in routes
        if r["access"] not in ("public", "authenticated")
    }


async def enforce(
    api: httpx.AsyncClient, sub: str, obj: str, act: str, dom: str = "default"
) -> bool:
    resp = await api.post(
        "/api/v1/rbac/enforce", json={"sub": sub, "dom": dom, "obj": obj, "act": act}
    )
    assert resp.status_code == 200, resp.text
    allowed: bool = resp.json()["allowed"]
    return allowed


def assert_problem(resp: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    doc: dict[str, Any] = resp.json()
    if slug is not None:
        assert doc["type"].endswith("/" + slug)
    return doc


async def test_admin_role_is_seeded_with_every_permission_the_routes_declare(
    api: httpx.AsyncClient,
) -> None:
    resp = await api.get("/api/v1/rbac/roles/admin")
    assert resp.status_code == 200
    held = {(p["obj"], p["act"]) for p in resp.json()["permissions"]}
    assert route_permissions() <= held
    assert {("users", "list"), ("config", "publish"), ("rbac", "admin")} <= held
    assert resp.json()["builtin"] is True
    assert resp.json()["members"] == [ADMIN]
    roles = {r["name"]: r for r in (await api.get("/api/v1/rbac/roles")).json()}
    assert roles["user"]["builtin"] is True
    assert roles["user"]["permissions"] == []


async def test_role_grant_assign_and_revoke_change_decisions_at_once(
    api: httpx.AsyncClient,
) -> None:
    assert (await api.post("/api/v1/rbac/roles", json={"name": "auditor"})).status_code == 201
    grant = {"sub": "auditor", "obj": "wallet", "act": "audit"}
    first = await api.post("/api/v1/rbac/policies", json=grant)
    assert first.status_code == 201
    assert first.json()["dom"] == "default"
    again = await api.post("/api/v1/rbac/policies", json=grant)
    assert again.status_code == 200
    assert again.json()["version"] > first.json()["version"]
    assignment = {"user": "u-bob", "role": "auditor"}
    assert (await api.post("/api/v1/rbac/assignments", json=assignment)).status_code == 201
    assert (await api.post("/api/v1/rbac/assignments", json=assignment)).status_code == 200
    assert await enforce(api, "u-bob", "wallet", "audit")
    assert not await enforce(api, "u-bob", "wallet", "topup")
    assert not await enforce(api, "u-bob", "wallet", "audit", dom="tenant-a")

    assert (
        await api.request("DELETE", "/api/v1/rbac/assignments", json=assignment)
    ).status_code == 204
    assert not await enforce(api, "u-bob", "wallet", "audit")
    assert (await api.request("DELETE", "/api/v1/rbac/policies", json=grant)).status_code == 204
    assert_problem(
        await api.request("DELETE", "/api/v1/rbac/policies", json=grant), 404, "rule-not-found"
    )
    assert_problem(
        await api.request("DELETE", "/api/v1/rbac/assignments", json=assignment),
        404,
        "rule-not-found",
    )


async def test_a_roles_members_come_a_page_at_a_time_and_can_be_left_out(
    api: httpx.AsyncClient,
) -> None:
    assert (await api.post("/api/v1/rbac/roles", json={"name": "crowd"})).status_code == 201
    users = [f"u-crowd-{i:02d}" for i in range(12)]
    for user in users:
        assigned = await api.post("/api/v1/rbac/assignments", json={"user": user, "role": "crowd"})
        assert assigned.status_code == 201

    page = (await api.get("/api/v1/rbac/roles/crowd/members?offset=5&limit=4")).json()
    assert page == {
        "role": "crowd",
        "dom": "default",
        "items": users[5:9],
        "total": 12,
        "offset": 5,
        "limit": 4,
    }
    found = (await api.get("/api/v1/rbac/roles/crowd/members?q=CROWD-1")).json()
    assert (found["items"], found["total"]) == (users[10:], 2)
    counted = (await api.get("/api/v1/rbac/roles/crowd?members=false")).json()
    assert (counted["members"], counted["member_count"]) == ([], 12)
    listed = {r["name"]: r for r in (await api.get("/api/v1/rbac/roles?members=false")).json()}
    assert (listed["crowd"]["members"], listed["crowd"]["member_count"]) == ([], 12)
    assert (await api.get("/api/v1/rbac/roles/crowd")).json()["member_count"] == 12
    assert_problem(await api.get("/api/v1/rbac/roles/nobody/members"), 404)
    assert_problem(await api.get("/api/v1/rbac/roles/crowd/members?limit=501"), 422)


async def test_user_roles_and_permissions_follow_role_inheritance(api: httpx.AsyncClient) -> None:
    for name in ("reader", "editor"):
        assert (
            await api.post("/api/v1/rbac/roles", json={"name": name, "dom": "tenant-a"})
        ).status_code == 201
    for sub, act in (("reader", "read"), ("editor", "edit")):
        resp = await api.post(
            "/api/v1/rbac/policies",
            json={"sub": sub, "dom": "tenant-a", "obj": "config", "act": act},
        )
        assert resp.status_code == 201
    for user, role in (("editor", "reader"), ("u-carol", "editor")):
        resp = await api.post(
            "/api/v1/rbac/assignments", json={"user": user, "role": role, "dom": "tenant-a"}
        )
        assert resp.status_code == 201
    roles = (await api.get("/api/v1/rbac/users/u-carol/roles?dom=tenant-a")).json()
    assert roles == {
        "user": "u-carol",
        "dom": "tenant-a",
        "roles": ["editor"],
        "implicit_roles": ["editor", "reader"],
    }
    perms = (await api.get("/api/v1/rbac/users/u-carol/permissions?dom=tenant-a")).json()
    assert perms["permissions"] == [
        {"obj": "config", "act": "edit", "via": "editor"},
        {"obj": "config", "act": "read", "via": "reader"},
    ]
    assert await enforce(api, "u-carol", "config", "read", dom="tenant-a")
    assert not await enforce(api, "u-carol", "config", "read")  # another domain
    empty = (await api.get("/api/v1/rbac/users/u-carol/permissions")).json()
    assert empty == {"user": "u-carol", "dom": "default", "permissions": []}


async def test_deleting_a_role_removes_its_grants_and_assignments(api: httpx.AsyncClient) -> None:
    await api.post("/api/v1/rbac/roles", json={"name": "temp"})
    await api.post("/api/v1/rbac/policies", json={"sub": "temp", "obj": "logs", "act": "read"})
    await api.post("/api/v1/rbac/assignments", json={"user": "u-dan", "role": "temp"})
    assert await enforce(api, "u-dan", "logs", "read")
    assert (await api.delete("/api/v1/rbac/roles/temp")).status_code == 204
    assert not await enforce(api, "u-dan", "logs", "read")
    assert_problem(await api.get("/api/v1/rbac/roles/temp"), 404, "role-not-found")
    assert (await api.post("/api/v1/rbac/roles", json={"name": "temp"})).status_code == 201
    assert (await api.get("/api/v1/rbac/roles/temp")).json()["members"] == []


async def test_safety_rules_answer_409_problems(api: httpx.AsyncClient) -> None:
    assert_problem(await api.delete("/api/v1/rbac/roles/admin"), 409, "builtin-role")
    assert_problem(await api.delete("/api/v1/rbac/roles/user"), 409, "builtin-role")
    assert_problem(await api.post("/api/v1/rbac/roles", json={"name": "admin"}), 409, "role-exists")
    assert_problem(
        await api.request(
            "DELETE",
            "/api/v1/rbac/policies",
            json={"sub": "admin", "obj": "rbac", "act": "admin"},
        ),
        409,
        "protected-rule",
    )
    last = {"user": ADMIN, "role": "admin"}
    assert_problem(
        await api.request("DELETE", "/api/v1/rbac/assignments", json=last), 409, "protected-rule"
    )
    assert_problem(
        await api.post("/api/v1/rbac/assignments", json={"user": "u-eve", "role": "ghost"}),
        404,
        "role-not-found",
    )
    # With a second admin, the first may go.
    await api.post("/api/v1/rbac/assignments", json={"user": "u-ops", "role": "admin"})
    assert (await api.request("DELETE", "/api/v1/rbac/assignments", json=last)).status_code == 204
    assert_problem(await api.get("/api/v1/rbac/roles"), 403, "forbidden")


async def test_public_api_needs_a_gateway_identity_holding_rbac_admin(
    api: httpx.AsyncClient,
) -> None:
    body = {"sub": "x", "obj": "y", "act": "z"}
    anonymous = await api.post("/api/v1/rbac/enforce", json=body, auth=None)
    assert_problem(anonymous, 401)
    forged = await api.post(
        "/api/v1/rbac/enforce",
        json=body,
        auth=AsService("gateway"),
        headers={"x-edge-identity": "sub=u-root"},
    )
    assert_problem(forged, 401)
    plain = await api.post("/api/v1/rbac/enforce", json=body, auth=AsGateway("u-plain"))
    assert_problem(plain, 403, "forbidden")
    assert_problem(await api.get("/api/v1/rbac/roles", auth=AsGateway("u-plain")), 403)


async def test_internal_endpoints_take_only_signed_service_calls(api: httpx.AsyncClient) -> None:
    assert_problem(await api.get("/internal/policy", auth=None), 401)
    body = {"user": "u-new", "role": "user"}
    assert_problem(await api.post("/internal/assignments", json=body, auth=AsGateway(ADMIN)), 401)
    first = await api.post("/internal/assignments", json=body, auth=AsService("sv-user"))
    assert first.status_code == 201
    again = await api.post("/internal/assignments", json=body, auth=AsService("sv-user"))
    assert again.status_code == 200
    roles = (await api.get("/api/v1/rbac/users/u-new/roles")).json()
    assert roles["roles"] == ["user"]


async def test_internal_policy_feed_sends_everything_then_only_the_version(
    api: httpx.AsyncClient,
) -> None:
    full = (await api.get("/internal/policy", auth=AsService("gateway-api"))).json()
    assert full["changed"] is True
    assert "[matchers]" in full["model"]
    assert ["g", ADMIN, "admin", "default"] in full["rules"]
    assert ["p", "admin", "default", "rbac", "admin"] in full["rules"]
    version = full["version"]
    same = await api.get(f"/internal/policy?since={version}", auth=AsService("gateway-api"))
    assert same.json() == {"version": version, "changed": False, "model": None, "rules": None}
    await api.post("/api/v1/rbac/policies", json={"sub": "user", "obj": "notices", "act": "read"})
    newer = await api.get(f"/internal/policy?since={version}", auth=AsService("gateway-api"))
    assert newer.json()["version"] > version
    assert ["p", "user", "default", "notices", "read"] in newer.json()["rules"]


async def test_batch_enforce_answers_in_request_order(api: httpx.AsyncClient) -> None:
    requests = [
        {"sub": ADMIN, "obj": "rbac", "act": "admin"},
        {"sub": "u-nobody", "obj": "rbac", "act": "admin"},
        {"sub": ADMIN, "obj": "users", "act": "list"},
        {"sub": ADMIN, "obj": "users", "act": "list", "dom": "elsewhere"},
    ]
    resp = await api.post("/api/v1/rbac/enforce/batch", json={"requests": requests})
    assert resp.status_code == 200
    assert [r["allowed"] for r in resp.json()["results"]] == [True, False, True, False]
    empty = await api.post("/api/v1/rbac/enforce/batch", json={"requests": []})
    assert empty.json()["results"] == []


BAD_INPUTS: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/rbac/policies", {"sub": "a", "obj": "b"}),
    ("POST", "/api/v1/rbac/policies", {"sub": "", "obj": "b", "act": "c"}),
    ("POST", "/api/v1/rbac/policies", {"sub": "a b", "obj": "b", "act": "c"}),
    ("POST", "/api/v1/rbac/policies", {"sub": "a,b", "obj": "b", "act": "c"}),
    ("POST", "/api/v1/rbac/policies", {"sub": "a", "obj": "b:c", "act": "c"}),
    ("POST", "/api/v1/rbac/policies", {"sub": "x" * 129, "obj": "b", "act": "c"}),
    ("POST", "/api/v1/rbac/policies", {"sub": 1, "obj": "b", "act": "c"}),
    ("POST", "/api/v1/rbac/policies", {"sub": "a", "obj": "b", "act": "c", "eft": "deny"}),
    ("POST", "/api/v1/rbac/policies", ["a", "b", "c"]),
    ("POST", "/api/v1/rbac/policies", b"not json"),
    ("POST", "/api/v1/rbac/policies", None),
    ("DELETE", "/api/v1/rbac/policies", {"sub": "a", "dom": None, "obj": "b", "act": "c"}),
    ("POST", "/api/v1/rbac/assignments", {"user": "a"}),
    ("DELETE", "/api/v1/rbac/assignments", {"user": "a", "role": "../admin"}),
    ("POST", "/api/v1/rbac/enforce", {"sub": "a", "obj": "b", "act": "c", "dom": "é"}),
    ("POST", "/api/v1/rbac/enforce/batch", {"requests": [{"sub": "a"}]}),
    ("POST", "/api/v1/rbac/enforce/batch", {"requests": "all"}),
    (
        "POST",
        "/api/v1/rbac/enforce/batch",
        {"requests": [{"sub": "a", "obj": "b", "act": "c"}] * 1001},
    ),
    ("POST", "/api/v1/rbac/roles", {"name": "r", "description": "d" * 513}),
    ("POST", "/api/v1/rbac/roles", {"name": "-r"}),
    ("GET", "/api/v1/rbac/roles?dom=a%20b", None),
    ("GET", "/api/v1/rbac/roles/a%20b", None),
    ("GET", "/api/v1/rbac/users/u-1/permissions?dom=", None),
    ("GET", "/api/v1/rbac/users/%E2%9C%93/roles", None),
    ("DELETE", "/api/v1/rbac/roles/nope", None),
    ("PUT", "/api/v1/rbac/policies", {"sub": "a", "obj": "b", "act": "c"}),
    ("GET", "/api/v1/rbac/nowhere", None),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_INPUTS)
async def test_bad_input_answers_4xx_problem_json(
    api: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    if isinstance(body, bytes):
        kwargs: dict[str, Any] = {
            "content": body,
            "headers": {"content-type": "application/json"},
        }
    else:
        kwargs = {} if body is None else {"json": body}
    resp = await api.request(method, path, **kwargs)
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.headers["content-type"] == PROBLEM


async def test_internal_policy_refuses_a_bad_since(api: httpx.AsyncClient) -> None:
    for query in ("since=-1", "since=abc"):
        resp = await api.get(f"/internal/policy?{query}", auth=AsService("gateway-api"))
        assert_problem(resp, 422)


async def test_sv_user_may_assign_only_the_user_role(api: httpx.AsyncClient) -> None:
    body = {"user": "u-climber", "role": "admin"}
    refused = await api.post("/internal/assignments", json=body, auth=AsService("sv-user"))
    assert_problem(refused, 403, "role-not-delegated")
    other_domain = {"user": "u-climber", "role": "user", "dom": "tenant-b"}
    refused = await api.post("/internal/assignments", json=other_domain, auth=AsService("sv-user"))
    assert_problem(refused, 403, "role-not-delegated")
    roles = (await api.get("/api/v1/rbac/users/u-climber/roles")).json()
    assert roles["roles"] == []
    # auth-jwt hands out the bootstrap admin's role, and only that one.
    ok = await api.post("/internal/assignments", json=body, auth=AsService("auth-jwt"))
    assert ok.status_code == 201
    user = {"user": "u-climber", "role": "user"}
    refused = await api.post("/internal/assignments", json=user, auth=AsService("auth-jwt"))
    assert_problem(refused, 403, "role-not-delegated")


@pytest.mark.parametrize("service", ["sv-notice", "sv-money", "gateway-api", "sv-config"])
async def test_services_not_listed_cannot_assign_roles(
    api: httpx.AsyncClient, service: str
) -> None:
    body = {"user": "u-sneaky", "role": "user"}
    resp = await api.post("/internal/assignments", json=body, auth=AsService(service))
    assert_problem(resp, 403, "forbidden")
    assert (await api.get("/api/v1/rbac/users/u-sneaky/roles")).json()["roles"] == []


async def test_services_guarding_admin_endpoints_may_ask_for_a_decision(
    api: httpx.AsyncClient,
) -> None:
    body = {"sub": ADMIN, "obj": "rbac", "act": "admin"}
    decided = await api.post("/internal/enforce", json=body, auth=AsService("sv-config"))
    assert decided.status_code == 200
    assert decided.json()["allowed"] is True
    plain = {"sub": "u-plain", "obj": "rbac", "act": "admin"}
    denied = await api.post("/internal/enforce", json=plain, auth=AsService("sv-notice"))
    assert denied.json()["allowed"] is False
    # The gateway has the whole policy; it is not on this endpoint's list.
    assert_problem(
        await api.post("/internal/enforce", json=body, auth=AsService("gateway-api")), 403
    )
