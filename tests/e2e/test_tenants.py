"""Tenants and apps on the real stack, through the gateway (issue 19, must-shows 4 and 5).

- A user of tenant A gets 403/404 on tenant B's roles, tenant record and apps.
- A role held in A grants nothing in B, nor in the platform's ``default``.
- An app gets a token by the client-credentials grant and calls a route its role
  permits (and is refused one it does not); disabled, it gets no token and its live
  token stops working at the gateway.
- Secret rotation: the old secret works during the overlap, then ``401 invalid_client``.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.accounts import PASSWORD, admin, register, user_id
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def tenant_login(
    stack: Stack, username: str, tenant: str | None, client_type: str
) -> httpx.Response:
    """A login to ``tenant``; each client type holds one session (a new login on the same
    type ends the older one), so the sessions a test keeps use different types."""
    body: dict[str, Any] = {"username": username, "password": PASSWORD, "client_type": client_type}
    if tenant is not None:
        body["tenant"] = tenant
    return httpx.post(stack.public + "/api/v1/auth/login", json=body, timeout=15)


def client_token(stack: Stack, client_id: str, secret: str) -> httpx.Response:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return httpx.post(
        stack.public + "/api/v1/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"authorization": f"Basic {raw}"},
        timeout=15,
    )


def until(check: Any, what: str, limit: float = 3.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_tenants_are_isolated_and_apps_use_client_credentials(stack: Stack) -> None:
    root = admin(stack)
    api = httpx.Client(base_url=stack.public, timeout=15)
    a, b = f"ta{uuid.uuid4().hex[:8]}", f"tb{uuid.uuid4().hex[:8]}"
    for tenant in (a, b):
        resp = api.post("/api/v1/tenants", json={"id": tenant, "name": tenant}, headers=root)
        assert resp.status_code == 201, resp.text

    # Her name, and a session of client type web in the default tenant.
    alice, alice_default = register(stack, "east", "alice")
    alice_id = user_id(alice_default)
    # Alice: member of both, admin of A only.
    for tenant in (a, b):
        resp = api.post(f"/api/v1/tenants/{tenant}/members", json={"user": alice_id}, headers=root)
        assert resp.status_code == 201, resp.text
    resp = api.post(
        "/api/v1/rbac/assignments", json={"user": alice_id, "role": "admin", "dom": a}, headers=root
    )
    assert resp.status_code == 201, resp.text

    # B's app, made by the platform admin, with a role in B that allows reading B's roles.
    app = api.post("/api/v1/auth/apps", json={"name": "robot", "tenant": b}, headers=root)
    assert app.status_code == 201, app.text
    assert app.headers["cache-control"] == "no-store"
    client_id, secret = app.json()["client_id"], app.json()["client_secret"]
    role = {"name": "robot", "dom": b}
    assert api.post("/api/v1/rbac/roles", json=role, headers=root).status_code == 201
    grant = {"sub": "robot", "dom": b, "obj": "rbac", "act": "admin"}
    assert api.post("/api/v1/rbac/policies", json=grant, headers=root).status_code == 201
    assign = {"user": client_id, "role": "robot", "dom": b}
    assert api.post("/api/v1/rbac/assignments", json=assign, headers=root).status_code == 201

    # --- must-show 4: isolation ---------------------------------------------------
    login_a = tenant_login(stack, alice, a, "app")
    assert login_a.status_code == 200, login_a.text
    in_a = bearer(login_a.json()["access_token"])
    until(
        lambda: api.get("/api/v1/rbac/roles", params={"dom": a}, headers=in_a).status_code == 200,
        "alice's admin role in A never took effect",
    )
    # Tenant B's roles, record, members and apps: 403 or 404, never data.
    roles_b = api.get("/api/v1/rbac/roles", params={"dom": b}, headers=in_a)
    assert roles_b.status_code == 403
    assert roles_b.headers["content-type"] == "application/problem+json"
    assert roles_b.json()["type"].endswith("/outside-tenant")
    assert api.get(f"/api/v1/tenants/{b}", headers=in_a).status_code == 404
    assert api.get(f"/api/v1/tenants/{b}/members", headers=in_a).status_code == 404
    assert api.get(f"/api/v1/auth/apps/{client_id}", headers=in_a).status_code == 404
    assert api.get("/api/v1/auth/apps", params={"tenant": b}, headers=in_a).status_code == 403
    grab = {"user": alice_id, "role": "admin", "dom": b}
    assert api.post("/api/v1/rbac/assignments", json=grab, headers=in_a).status_code == 403
    assert [t["id"] for t in api.get("/api/v1/tenants", headers=in_a).json()] == [a]

    # Her role in A grants nothing once she acts in B, nor in default: the gateway refuses.
    login_b = tenant_login(stack, alice, b, "mini")
    assert login_b.status_code == 200, login_b.text
    for headers in (bearer(login_b.json()["access_token"]), alice_default):
        for dom in (a, b):
            refused = api.get("/api/v1/rbac/roles", params={"dom": dom}, headers=headers)
            assert refused.status_code == 403
            assert refused.json()["type"].endswith("/permission-denied")
    # A stranger cannot log in to A at all.
    stranger, _ = register(stack, "west", "mallory")
    assert tenant_login(stack, stranger, a, "app").status_code == 403

    # --- apps: client credentials through the gateway -------------------------------
    issued = client_token(stack, client_id, secret)
    assert issued.status_code == 200, issued.text
    assert issued.headers["cache-control"] == "no-store"
    as_app = bearer(issued.json()["access_token"])
    permitted = api.get("/api/v1/rbac/roles", params={"dom": b}, headers=as_app)
    assert permitted.status_code == 200, permitted.text
    assert "robot" in {r["name"] for r in permitted.json()}
    assert api.get("/api/v1/rbac/roles", params={"dom": a}, headers=as_app).status_code == 403
    assert api.get("/api/v1/auth/apps", headers=as_app).status_code == 403
    wrong = client_token(stack, client_id, "not-the-secret")
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")

    # --- must-show 5: rotation with an overlap window --------------------------------
    rotated = api.post(
        f"/api/v1/auth/apps/{client_id}/secret", json={"overlap_seconds": 3}, headers=root
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["client_secret"]
    assert client_token(stack, client_id, secret).status_code == 200
    assert client_token(stack, client_id, new_secret).status_code == 200
    time.sleep(3.2)
    late = client_token(stack, client_id, secret)
    assert late.status_code == 401
    assert late.json()["error"] == "invalid_client"
    fresh = client_token(stack, client_id, new_secret)
    assert fresh.status_code == 200

    # --- a disabled app is refused, and its live token stops at the gateway ------------
    live = bearer(fresh.json()["access_token"])
    assert api.get("/api/v1/rbac/roles", params={"dom": b}, headers=live).status_code == 200
    off = api.patch(f"/api/v1/auth/apps/{client_id}", json={"disabled": True}, headers=root)
    assert off.status_code == 200, off.text
    refused = client_token(stack, client_id, new_secret)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    until(
        lambda: api.get("/api/v1/rbac/roles", params={"dom": b}, headers=live).status_code == 401,
        "the disabled app's token still passes the gateway",
    )
    api.close()
