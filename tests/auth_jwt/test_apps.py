"""Tenants at login, and apps: OAuth2 client credentials at ``POST /api/v1/auth/token``.

The identity services and auth-rbac run in-process (tests/identity_harness.py); admin
calls carry an identity signed as the gateway. The token endpoint is driven both with
raw form posts (to pin each RFC 6749 error) and with Authlib's OAuth2 client.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import jwt
import pytest
import pytest_asyncio
from authlib.integrations.httpx_client import AsyncOAuth2Client
from sqlalchemy import select

from auth_jwt.models import AppSecret
from edgelib.identity import Identity
from tests.identity_harness import IdentityStack, as_gateway, identity_of, identity_stack, signed

PASSWORD = "correct horse 1"
TOKEN = "/api/v1/auth/token"
FORM = {"content-type": "application/x-www-form-urlencoded"}

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[IdentityStack]:
    async with identity_stack(tmp_path_factory.mktemp("apps")) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def admin(stack: IdentityStack) -> Identity:
    return await stack.admin_identity()


async def call(
    stack: IdentityStack, who: Identity, method: str, path: str, body: Any = None
) -> httpx.Response:
    client = stack.clients["auth-rbac"] if path.startswith("/api/v1/tenants") else stack.auth
    return await client.request(method, path, json=body, headers=as_gateway(method, path, who))


async def new_tenant(stack: IdentityStack, admin: Identity) -> str:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    resp = await call(stack, admin, "POST", "/api/v1/tenants", {"id": tenant, "name": tenant})
    assert resp.status_code == 201, resp.text
    return tenant


async def new_member(stack: IdentityStack, admin: Identity, tenant: str) -> tuple[str, str]:
    name = f"u{uuid.uuid4().hex[:10]}"
    user = await stack.register(name, PASSWORD)
    resp = await call(
        stack, admin, "POST", f"/api/v1/tenants/{tenant}/members", {"user": user["id"]}
    )
    assert resp.status_code == 201, resp.text
    return name, user["id"]


async def login(stack: IdentityStack, name: str, tenant: str | None) -> httpx.Response:
    body: dict[str, Any] = {"username": name, "password": PASSWORD, "client_type": "web"}
    if tenant is not None:
        body["tenant"] = tenant
    return await stack.auth.post("/api/v1/auth/login", json=body)


async def new_app(stack: IdentityStack, admin: Identity, tenant: str) -> dict[str, Any]:
    resp = await call(
        stack, admin, "POST", "/api/v1/auth/apps", {"name": "robot", "tenant": tenant}
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["cache-control"] == "no-store"
    doc: dict[str, Any] = resp.json()
    return doc


async def token(
    stack: IdentityStack, client_id: str, secret: str, *, basic: bool = False
) -> httpx.Response:
    form = {"grant_type": "client_credentials"}
    if basic:
        raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        return await stack.auth.post(TOKEN, data=form, headers={"authorization": f"Basic {raw}"})
    return await stack.auth.post(
        TOKEN, data={**form, "client_id": client_id, "client_secret": secret}
    )


def claims_of(access_token: str) -> dict[str, Any]:
    doc: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return doc


# --- tenants at login ----------------------------------------------------------------


async def test_login_with_a_tenant_puts_it_in_the_token_and_members_only(
    stack: IdentityStack, admin: Identity
) -> None:
    tenant = await new_tenant(stack, admin)
    name, _ = await new_member(stack, admin, tenant)
    resp = await login(stack, name, tenant)
    assert resp.status_code == 200, resp.text
    assert claims_of(resp.json()["access_token"])["tenant"] == tenant
    assert identity_of(resp.json()["access_token"]).tenant == tenant
    plain = await login(stack, name, None)
    assert claims_of(plain.json()["access_token"])["tenant"] == "default"

    outsider = f"u{uuid.uuid4().hex[:10]}"
    await stack.register(outsider, PASSWORD)
    for who, where in ((outsider, tenant), (name, "no-such-tenant")):
        refused = await login(stack, who, where)
        assert refused.status_code == 403, refused.text
        assert refused.json()["type"].endswith("/tenant-refused")
    # A wrong password is still a 401, whatever the tenant: nothing is told for free.
    wrong = await stack.auth.post(
        "/api/v1/auth/login",
        json={"username": name, "password": "wrong", "client_type": "app", "tenant": tenant},
    )
    assert wrong.status_code == 401


async def test_refresh_is_refused_once_the_tenant_is_disabled(
    stack: IdentityStack, admin: Identity
) -> None:
    tenant = await new_tenant(stack, admin)
    name, _ = await new_member(stack, admin, tenant)
    pair = (await login(stack, name, tenant)).json()
    await call(stack, admin, "PATCH", f"/api/v1/tenants/{tenant}", {"disabled": True})
    resp = await stack.auth.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert resp.status_code == 403
    assert resp.json()["type"].endswith("/tenant-refused")
    assert (await login(stack, name, tenant)).status_code == 403


async def test_refresh_with_a_tenant_switches_the_session_members_only(
    stack: IdentityStack, admin: Identity
) -> None:
    first, second = await new_tenant(stack, admin), await new_tenant(stack, admin)
    name, user_id = await new_member(stack, admin, first)
    pair = (await login(stack, name, None)).json()

    async def refresh(token: str, tenant: str | None) -> httpx.Response:
        body: dict[str, Any] = {"refresh_token": token}
        if tenant is not None:
            body["tenant"] = tenant
        return await stack.auth.post("/api/v1/auth/refresh", json=body)

    switched = await refresh(pair["refresh_token"], first)
    assert switched.status_code == 200, switched.text
    assert claims_of(switched.json()["access_token"])["tenant"] == first
    # The session stays in its tenant on a plain refresh.
    kept = await refresh(switched.json()["refresh_token"], None)
    assert claims_of(kept.json()["access_token"])["tenant"] == first
    # Not a member of the second: refused, and the refresh token is not used up.
    refused = await refresh(kept.json()["refresh_token"], second)
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/tenant-refused")
    back = await refresh(kept.json()["refresh_token"], "default")
    assert back.status_code == 200, back.text
    assert claims_of(back.json()["access_token"])["tenant"] == "default"
    assert claims_of(back.json()["access_token"])["sub"] == user_id


# --- apps and the client-credentials grant -------------------------------------------


async def test_app_gets_a_token_acting_as_itself_in_its_tenant(
    stack: IdentityStack, admin: Identity
) -> None:
    tenant = await new_tenant(stack, admin)
    app = await new_app(stack, admin, tenant)
    assert app["client_id"].startswith("app_")
    assert app["tenant"] == tenant
    for basic in (False, True):
        resp = await token(stack, app["client_id"], app["client_secret"], basic=basic)
        assert resp.status_code == 200, resp.text
        assert resp.headers["cache-control"] == "no-store"
        body = resp.json()
        assert set(body) == {"access_token", "token_type", "expires_in"}
        assert body["token_type"] == "Bearer"
        claims = claims_of(body["access_token"])
        assert claims["sub"] == claims["client_id"] == app["client_id"]
        assert claims["tenant"] == tenant
        assert claims["client_type"] == "service"
        assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
        forwarded = identity_of(body["access_token"])
        assert (forwarded.app, forwarded.tenant) == (app["client_id"], tenant)
    # The secret is stored as its SHA-256 only; it is never shown again.
    async with stack.apps["auth-jwt"].state.database.sessions() as session:
        stored = (
            await session.scalars(select(AppSecret).where(AppSecret.client_id == app["client_id"]))
        ).all()
    assert [s.secret_hash for s in stored] == [
        hashlib.sha256(app["client_secret"].encode()).hexdigest()
    ]
    shown = await call(stack, admin, "GET", f"/api/v1/auth/apps/{app['client_id']}")
    assert shown.status_code == 200
    assert "client_secret" not in shown.json()


async def test_authlib_oauth2_client_fetches_a_token_by_basic_and_by_post(
    stack: IdentityStack, admin: Identity
) -> None:
    tenant = await new_tenant(stack, admin)
    app = await new_app(stack, admin, tenant)
    for method in ("client_secret_basic", "client_secret_post"):
        async with AsyncOAuth2Client(
            app["client_id"],
            app["client_secret"],
            token_endpoint_auth_method=method,
            # Authlib drives httpx2 (the maintained fork), so its own ASGI transport.
            transport=httpx2.ASGITransport(app=stack.apps["auth-jwt"]),
        ) as client:
            fetched = await client.fetch_token(
                "http://auth-jwt/api/v1/auth/token", grant_type="client_credentials"
            )
        assert fetched["token_type"] == "Bearer"
        assert claims_of(fetched["access_token"])["sub"] == app["client_id"]


async def test_token_endpoint_answers_rfc6749_errors(stack: IdentityStack, admin: Identity) -> None:
    tenant = await new_tenant(stack, admin)
    app = await new_app(stack, admin, tenant)
    cid, secret = app["client_id"], app["client_secret"]

    def expect(resp: httpx.Response, status: int, error: str) -> None:
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"] == "application/json"
        assert resp.headers["cache-control"] == "no-store"
        assert resp.json()["error"] == error
        if status == 401:
            assert resp.headers["www-authenticate"].startswith("Basic")

    expect(await token(stack, cid, "wrong"), 401, "invalid_client")
    expect(await token(stack, cid, "wrong", basic=True), 401, "invalid_client")
    expect(await token(stack, "app_0000000000000000", secret), 401, "invalid_client")
    expect(await token(stack, "x" * 300, secret), 401, "invalid_client")
    expect(await token(stack, "app_\x00", secret), 401, "invalid_client")
    expect(
        await stack.auth.post(TOKEN, data={"grant_type": "client_credentials"}),
        401,
        "invalid_client",
    )
    expect(
        await stack.auth.post(
            TOKEN, headers={"authorization": "Basic !!!"}, data={"grant_type": "client_credentials"}
        ),
        401,
        "invalid_client",
    )
    expect(
        await stack.auth.post(TOKEN, data={"client_id": cid, "client_secret": secret}),
        400,
        "invalid_request",
    )
    expect(
        await stack.auth.post(
            TOKEN, data={"grant_type": "password", "client_id": cid, "client_secret": secret}
        ),
        400,
        "unsupported_grant_type",
    )
    expect(
        await stack.auth.post(
            TOKEN,
            json={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
        ),
        400,
        "invalid_request",
    )
    expect(
        await stack.auth.post(
            TOKEN,
            content=f"grant_type=client_credentials&grant_type=client_credentials&client_id={cid}&client_secret={secret}",
            headers=FORM,
        ),
        400,
        "invalid_request",
    )
    raw = base64.b64encode(f"{cid}:{secret}".encode()).decode()
    expect(
        await stack.auth.post(
            TOKEN,
            data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
            headers={"authorization": f"Basic {raw}"},
        ),
        400,
        "invalid_request",
    )
    expect(await stack.auth.post(TOKEN, content=b"\xff\xfe", headers=FORM), 400, "invalid_request")
    expect(
        await stack.auth.post(TOKEN, content=b"a=" + b"x" * 5000, headers=FORM),
        400,
        "invalid_request",
    )


async def test_rotation_keeps_the_old_secret_during_the_overlap_then_refuses_it(
    stack: IdentityStack, admin: Identity
) -> None:
    tenant = await new_tenant(stack, admin)
    app = await new_app(stack, admin, tenant)
    cid, old = app["client_id"], app["client_secret"]
    rotated = await call(
        stack, admin, "POST", f"/api/v1/auth/apps/{cid}/secret", {"overlap_seconds": 2}
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["client_secret"]
    assert new != old
    assert (await token(stack, cid, old)).status_code == 200
    assert (await token(stack, cid, new)).status_code == 200
    await asyncio.sleep(2.2)
    late = await token(stack, cid, old)
    assert late.status_code == 401
    assert late.json()["error"] == "invalid_client"
    assert (await token(stack, cid, new)).status_code == 200
    # Overlap 0: the secret before stops at once.
    again = await call(
        stack, admin, "POST", f"/api/v1/auth/apps/{cid}/secret", {"overlap_seconds": 0}
    )
    assert (await token(stack, cid, new)).status_code == 401
    assert (await token(stack, cid, again.json()["client_secret"])).status_code == 200


async def test_disabled_app_gets_no_token_and_its_tokens_are_revoked(
    stack: IdentityStack, admin: Identity
) -> None:
    tenant = await new_tenant(stack, admin)
    app = await new_app(stack, admin, tenant)
    cid, secret = app["client_id"], app["client_secret"]
    before = claims_of((await token(stack, cid, secret)).json()["access_token"])
    resp = await call(stack, admin, "PATCH", f"/api/v1/auth/apps/{cid}", {"disabled": True})
    assert resp.status_code == 200
    assert resp.json()["disabled"] is True
    refused = await token(stack, cid, secret)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    path = "/internal/revocations?since=0"
    feed = (await stack.auth.get(path, headers=signed("GET", path))).json()
    assert before["sid"] in {r["sid"] for r in feed["revocations"]}
    await call(stack, admin, "PATCH", f"/api/v1/auth/apps/{cid}", {"disabled": False})
    after = claims_of((await token(stack, cid, secret)).json()["access_token"])
    assert after["sid"] != before["sid"]


async def test_an_app_of_a_disabled_tenant_is_unauthorized(
    stack: IdentityStack, admin: Identity
) -> None:
    tenant = await new_tenant(stack, admin)
    app = await new_app(stack, admin, tenant)
    await call(stack, admin, "PATCH", f"/api/v1/tenants/{tenant}", {"disabled": True})
    resp = await token(stack, app["client_id"], app["client_secret"])
    assert resp.status_code == 400
    assert resp.json()["error"] == "unauthorized_client"
    created = await call(stack, admin, "POST", "/api/v1/auth/apps", {"name": "x", "tenant": tenant})
    assert created.status_code == 403


async def test_a_tenant_admin_manages_only_its_own_tenants_apps(
    stack: IdentityStack, admin: Identity
) -> None:
    mine, theirs = await new_tenant(stack, admin), await new_tenant(stack, admin)
    name, user_id = await new_member(stack, admin, mine)
    assigned = await stack.clients["auth-rbac"].post(
        "/api/v1/rbac/assignments",
        json={"user": user_id, "role": "admin", "dom": mine},
        headers=as_gateway("POST", "/api/v1/rbac/assignments", admin),
    )
    assert assigned.status_code == 201, assigned.text
    owner = identity_of((await login(stack, name, mine)).json()["access_token"])
    own_app = await new_app(stack, owner, mine)
    other_app = await new_app(stack, admin, theirs)

    listed = await call(stack, owner, "GET", "/api/v1/auth/apps")
    assert [a["client_id"] for a in listed.json()["items"]] == [own_app["client_id"]]
    assert (
        await call(stack, owner, "GET", f"/api/v1/auth/apps?tenant={theirs}")
    ).status_code == 403
    hidden = await call(stack, owner, "GET", f"/api/v1/auth/apps/{other_app['client_id']}")
    assert hidden.status_code == 404
    for method, path, body in (
        ("PATCH", f"/api/v1/auth/apps/{other_app['client_id']}", {"disabled": True}),
        ("POST", f"/api/v1/auth/apps/{other_app['client_id']}/secret", {}),
    ):
        assert (await call(stack, owner, method, path, body)).status_code == 404
    created = await call(stack, owner, "POST", "/api/v1/auth/apps", {"name": "x", "tenant": theirs})
    assert created.status_code == 403
    # The same user in the default tenant holds no apps:admin: the role was acme's.
    plain = identity_of((await login(stack, name, None)).json()["access_token"])
    assert (await call(stack, plain, "GET", "/api/v1/auth/apps")).status_code == 403


async def test_bad_app_bodies_are_422_problems(stack: IdentityStack, admin: Identity) -> None:
    for body in ({}, {"name": ""}, {"name": "x", "tenant": "a b"}, {"name": "x", "extra": 1}):
        resp = await call(stack, admin, "POST", "/api/v1/auth/apps", body)
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"] == "application/problem+json"
    resp = await call(
        stack, admin, "POST", "/api/v1/auth/apps/app_x/secret", {"overlap_seconds": -1}
    )
    assert resp.status_code == 422
