"""auth-jwt sessions: login, token claims, refresh rotation and replay, single sign-on, logout.

The identity services run in-process (tests/identity_harness.py); calls "through the
gateway" carry an identity signed as the gateway.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
import pytest_asyncio
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from edgelib.backends import RedisBackend
from edgelib.identity import Identity
from tests.identity_harness import (
    IdentityStack,
    as_gateway,
    identity_of,
    identity_stack,
    signed,
)

PASSWORD = "correct horse 1"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[IdentityStack]:
    async with identity_stack(tmp_path_factory.mktemp("identity")) as s:
        yield s


def fresh_name() -> str:
    return f"u{uuid.uuid4().hex[:10]}"


async def new_user(stack: IdentityStack, region: str | None = None) -> str:
    name = fresh_name()
    await stack.register(name, PASSWORD, region=region)
    return name


async def login(stack: IdentityStack, name: str, client_type: str = "web") -> dict[str, Any]:
    resp = await stack.login(name, PASSWORD, client_type)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def refresh(stack: IdentityStack, token: str) -> httpx.Response:
    return await stack.auth.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def as_user(
    stack: IdentityStack, identity: Identity, method: str, path: str
) -> httpx.Response:
    return await stack.auth.request(method, path, headers=as_gateway(method, path, identity))


async def feed(stack: IdentityStack, since: float = 0.0) -> set[str]:
    path = f"/internal/revocations?since={since}"
    resp = await stack.auth.get(path, headers=signed("GET", path))
    assert resp.status_code == 200
    return {r["sid"] for r in resp.json()["revocations"]}


async def test_login_returns_bearer_pair_and_a_short_lived_asymmetric_access_token(
    stack: IdentityStack,
) -> None:
    name = await new_user(stack, "west")
    resp = await stack.login(name, PASSWORD, "app")
    assert resp.headers["cache-control"] == "no-store"
    pair = resp.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 300
    header = jwt.get_unverified_header(pair["access_token"])
    assert header["alg"] == "ES256"
    assert header["typ"] == "at+jwt"
    assert header["kid"]
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert {"iss", "aud", "sub", "sid", "region", "client_type", "exp", "iat", "jti"} <= set(claims)
    assert claims["iss"] == "edge-auth"
    assert claims["aud"] == "edge"
    assert claims["region"] == "west"
    assert claims["client_type"] == "app"
    assert claims["preferred_username"] == name
    assert claims["exp"] - claims["iat"] == 300
    # The refresh token is opaque: not a JWT, no claims to read.
    assert pair["refresh_token"].count(".") == 0


async def test_access_token_verifies_with_joserfc_given_only_the_jwks(
    stack: IdentityStack,
) -> None:
    name = await new_user(stack)
    pair = await login(stack, name)
    document = (await stack.auth.get("/.well-known/jwks.json")).json()
    assert all("d" not in key for key in document["keys"])
    keys = KeySet.import_key_set(document)
    token = jose_jwt.decode(pair["access_token"], keys, algorithms=["ES256"])
    registry = jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": "edge-auth"},
        aud={"essential": True, "value": "edge"},
        sub={"essential": True},
        sid={"essential": True},
        exp={"essential": True},
    )
    registry.validate(token.claims)
    assert token.header["typ"] == "at+jwt"
    assert token.claims["preferred_username"] == name


@pytest.mark.parametrize(
    "body",
    [
        {"username": "x", "password": "y"},
        {"username": "x", "password": "y", "client_type": "tv"},
        {"username": "", "password": "y", "client_type": "web"},
        {"username": "x", "password": "y", "client_type": "web", "extra": 1},
    ],
)
async def test_malformed_login_is_422_problem(stack: IdentityStack, body: dict[str, Any]) -> None:
    resp = await stack.auth.post("/api/v1/auth/login", json=body)
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"


async def test_wrong_password_and_unknown_user_get_the_same_401(stack: IdentityStack) -> None:
    name = await new_user(stack)
    wrong = await stack.login(name, "not the password", address="198.51.100.1")
    unknown = await stack.login(fresh_name(), PASSWORD, address="198.51.100.1")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["type"] == unknown.json()["type"]
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_refresh_rotates_and_replay_ends_only_that_session(stack: IdentityStack) -> None:
    name = await new_user(stack)
    web = await login(stack, name, "web")
    app = await login(stack, name, "app")

    rotated = await refresh(stack, web["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != web["refresh_token"]
    assert (
        identity_of(second["access_token"]).session_id
        == identity_of(web["access_token"]).session_id
    )

    replay = await refresh(stack, web["refresh_token"])
    assert replay.status_code == 401
    assert replay.json()["type"].endswith("/refresh-token-reused")
    # The family is dead: even the newest refresh token of that session is refused...
    after = await refresh(stack, second["refresh_token"])
    assert after.status_code == 401
    assert identity_of(web["access_token"]).session_id in await feed(stack)
    # ...while the user's other session keeps refreshing.
    assert (await refresh(stack, app["refresh_token"])).status_code == 200


async def test_garbage_refresh_tokens_are_refused_with_problems(stack: IdentityStack) -> None:
    unknown = await refresh(stack, "x" * 43)
    assert unknown.status_code == 401
    assert unknown.headers["content-type"] == "application/problem+json"
    assert (await refresh(stack, "short")).status_code == 422
    missing = await stack.auth.post("/api/v1/auth/refresh", json={})
    assert missing.status_code == 422


async def test_concurrent_refreshes_with_one_token_let_at_most_one_through(
    stack: IdentityStack,
) -> None:
    name = await new_user(stack)
    pair = await login(stack, name)
    results = await asyncio.gather(*(refresh(stack, pair["refresh_token"]) for _ in range(4)))
    assert sum(r.status_code == 200 for r in results) <= 1
    assert all(r.status_code in (200, 401) for r in results)


async def test_new_web_login_ends_the_previous_web_session_but_not_the_app_one(
    stack: IdentityStack,
) -> None:
    name = await new_user(stack)
    subscription = await stack.apps["auth-jwt"].state.backend.subscribe("edge:auth:revocations")
    first_web = await login(stack, name, "web")
    app = await login(stack, name, "app")
    second_web = await login(stack, name, "web")
    old_sid = identity_of(first_web["access_token"]).session_id

    _channel, message = await asyncio.wait_for(anext(aiter(subscription)), 2)
    await subscription.close()
    assert old_sid in {r["sid"] for r in orjson.loads(message)["revocations"]}
    assert old_sid in await feed(stack)
    assert (await refresh(stack, first_web["refresh_token"])).status_code == 401
    assert (await refresh(stack, app["refresh_token"])).status_code == 200
    assert (await refresh(stack, second_web["refresh_token"])).status_code == 200


async def test_sessions_list_logout_and_logout_all(stack: IdentityStack) -> None:
    name = await new_user(stack)
    web = identity_of((await login(stack, name, "web"))["access_token"])
    app = identity_of((await login(stack, name, "app"))["access_token"])
    mini = identity_of((await login(stack, name, "mini"))["access_token"])

    listed = (await as_user(stack, web, "GET", "/api/v1/auth/sessions")).json()["items"]
    assert {s["client_type"] for s in listed} == {"web", "app", "mini"}
    assert [s["current"] for s in listed if s["id"] == web.session_id] == [True]

    assert (await as_user(stack, app, "POST", "/api/v1/auth/logout")).status_code == 204
    listed = (await as_user(stack, web, "GET", "/api/v1/auth/sessions")).json()["items"]
    assert {s["client_type"] for s in listed} == {"web", "mini"}
    assert app.session_id in await feed(stack)

    assert (await as_user(stack, web, "POST", "/api/v1/auth/logout-all")).status_code == 204
    assert {web.session_id, mini.session_id} <= await feed(stack)
    listed = (await as_user(stack, web, "GET", "/api/v1/auth/sessions")).json()["items"]
    assert listed == []


async def test_a_user_can_end_own_sessions_only(stack: IdentityStack) -> None:
    alice, bob = await new_user(stack), await new_user(stack)
    a = identity_of((await login(stack, alice))["access_token"])
    b = identity_of((await login(stack, bob))["access_token"])
    path = f"/api/v1/auth/sessions/{b.session_id}"
    assert (await as_user(stack, a, "DELETE", path)).status_code == 404
    assert (await as_user(stack, b, "DELETE", path)).status_code == 204
    assert b.session_id in await feed(stack)


async def test_an_administrator_lists_and_ends_another_users_session(
    stack: IdentityStack,
) -> None:
    admin = await stack.admin_identity("mini")
    name = await new_user(stack, region="west")
    web = identity_of((await login(stack, name, "web"))["access_token"])
    app = identity_of((await login(stack, name, "app"))["access_token"])
    base = f"/api/v1/auth/users/{web.user_id}/sessions"

    listed = await as_user(stack, admin, "GET", base)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert {i["id"] for i in items} == {web.session_id, app.session_id}
    assert not any(i["current"] for i in items)

    ended = await as_user(stack, admin, "DELETE", f"{base}/{app.session_id}")
    assert ended.status_code == 204
    assert app.session_id in await feed(stack)
    left = (await as_user(stack, admin, "GET", base)).json()["items"]
    assert [i["id"] for i in left] == [web.session_id]
    # Already ended: nothing more to do; another user's session id is not this user's.
    assert (await as_user(stack, admin, "DELETE", f"{base}/{app.session_id}")).status_code == 204
    other = f"/api/v1/auth/users/{web.user_id}/sessions/{admin.session_id}"
    missing = await as_user(stack, admin, "DELETE", other)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_other_users_sessions_need_sessions_permissions(stack: IdentityStack) -> None:
    name = await new_user(stack)
    plain = identity_of((await login(stack, name))["access_token"])
    base = f"/api/v1/auth/users/{plain.user_id}/sessions"
    for method, path in [("GET", base), ("DELETE", f"{base}/{plain.session_id}")]:
        resp = await as_user(stack, plain, method, path)
        assert resp.status_code == 403, (method, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert (await stack.auth.request(method, path)).status_code == 401


async def test_session_endpoints_need_the_gateway_identity(stack: IdentityStack) -> None:
    for method, path in [
        ("GET", "/api/v1/auth/sessions"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/logout-all"),
    ]:
        resp = await stack.auth.request(method, path)
        assert resp.status_code == 401
        assert resp.headers["content-type"] == "application/problem+json"


async def test_revocation_feed_is_internal_and_incremental(stack: IdentityStack) -> None:
    assert (await stack.auth.get("/internal/revocations")).status_code == 401
    path = "/internal/revocations"
    now = (await stack.auth.get(path, headers=signed("GET", path))).json()["now"]
    name = await new_user(stack)
    identity = identity_of((await login(stack, name))["access_token"])
    await as_user(stack, identity, "POST", "/api/v1/auth/logout")
    assert await feed(stack, since=now) == {identity.session_id}
    assert await feed(stack, since=10**15) == set()
    bad = "/internal/revocations?since=soon"
    assert (await stack.auth.get(bad, headers=signed("GET", bad))).status_code == 422


@pytest.mark.integration
async def test_revocations_reach_redis_subscribers_and_the_feed_on_postgresql(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    channel = f"edge:auth:revocations:{uuid.uuid4().hex[:8]}"
    async with identity_stack(
        tmp_path, pg_url=pg_url, redis_url=redis_url, auth={"revocation_channel": channel}
    ) as stack:
        listener = RedisBackend(redis_url)
        subscription = await listener.subscribe(channel)
        try:
            name = await new_user(stack)
            first = await login(stack, name, "web")
            await login(stack, name, "web")
            _channel, message = await asyncio.wait_for(anext(aiter(subscription)), 3)
            sid = identity_of(first["access_token"]).session_id
            assert orjson.loads(message)["revocations"][0]["sid"] == sid
            assert sid in await feed(stack)
            second = await refresh(stack, first["refresh_token"])
            assert second.status_code == 401
        finally:
            await subscription.close()
            await listener.close()
