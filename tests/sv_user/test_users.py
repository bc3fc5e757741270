"""sv-user: registration across regions, profiles, passwords, credential checks.

The identity services run in-process (tests/identity_harness.py); a request "from
the gateway" carries an identity signed as the gateway, as the real one sends it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select

from edgelib.identity import Identity
from edgelib.signing import ServiceSigner
from sv_user.models import User
from tests.identity_harness import (
    IdentityStack,
    as_gateway,
    identity_of,
    identity_stack,
    signed,
)

PASSWORD = "correct horse 1"

# One stack for the module (each test uses its own usernames): starting four apps
# with their migrations costs more than most tests here.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[IdentityStack]:
    async with identity_stack(tmp_path_factory.mktemp("identity")) as s:
        yield s


async def users_in(stack: IdentityStack, region: str) -> list[User]:
    """The region's accounts, but for the bootstrap admin."""
    database = stack.apps[f"sv-user-{region}"].state.database
    async with database.sessions() as session:
        query = select(User).where(User.username != "admin").order_by(User.username)
        return list((await session.execute(query)).scalars())


async def me(stack: IdentityStack, identity: Identity, **kwargs: Any) -> httpx.Response:
    method = kwargs.pop("method", "GET")
    path = kwargs.pop("path", "/api/v1/users/me")
    client = stack.users(identity.region)
    return await client.request(method, path, headers=as_gateway(method, path, identity), **kwargs)


async def login_identity(stack: IdentityStack, username: str, client_type: str = "web") -> Identity:
    resp = await stack.login(username, PASSWORD, client_type)
    assert resp.status_code == 200, resp.text
    return identity_of(resp.json()["access_token"])


async def test_registration_answers_201_with_id_username_and_assigned_region(
    stack: IdentityStack,
) -> None:
    resp = await stack.users("east").post(
        "/api/v1/users", json={"username": "Alice", "password": PASSWORD, "email": "a@x.io"}
    )
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == {"id", "username", "region"}
    assert body["username"] == "alice"
    assert body["region"] in {"east", "west"}
    stored = await users_in(stack, body["region"])
    assert [u.username for u in stored] == ["alice"]


async def test_registration_for_west_arriving_at_east_is_stored_in_west(
    stack: IdentityStack,
) -> None:
    created = await stack.register("walter", region="west")
    assert created["region"] == "west"
    assert created["id"] in [u.id for u in await users_in(stack, "west")]
    assert created["id"] not in [u.id for u in await users_in(stack, "east")]
    entry = await stack.region.get(
        f"/internal/directory/users/{created['id']}",
        headers=signed("GET", f"/internal/directory/users/{created['id']}"),
    )
    assert entry.json()["region"] == "west"
    assert entry.json()["status"] == "active"


async def test_username_cannot_exist_in_two_regions(stack: IdentityStack) -> None:
    await stack.register("bob", region="east")
    for region, name in [("west", "bob"), ("east", "BOB"), (None, "Bob")]:
        body: dict[str, Any] = {"username": name, "password": PASSWORD}
        if region:
            body["region"] = region
        resp = await stack.users("west").post("/api/v1/users", json=body)
        assert resp.status_code == 409, (region, name)
        assert resp.json()["type"].endswith("/username-taken")
    assert "bob" not in [u.username for u in await users_in(stack, "west")]


@pytest.mark.parametrize(
    "body",
    [
        {"username": "ab", "password": PASSWORD},
        {"username": "has space", "password": PASSWORD},
        {"username": "carol", "password": "short"},
        {"username": "carol", "password": "x" * 129},
        {"username": "carol", "password": PASSWORD, "email": "not-an-email"},
        {"username": "carol", "password": PASSWORD, "region": "Mars!"},
        {"username": "carol", "password": PASSWORD, "is_admin": True},
        {"username": "carol"},
        {"username": "carol12", "password": "CAROL12"},
        {"username": "carol", "password": "aaaaaaaaaa"},
    ],
)
async def test_bad_registration_is_a_422_problem(
    stack: IdentityStack, body: dict[str, Any]
) -> None:
    resp = await stack.users("east").post("/api/v1/users", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == "application/problem+json"


async def test_registration_for_an_unknown_region_is_422_and_leaves_the_name_free(
    stack: IdentityStack,
) -> None:
    resp = await stack.users("east").post(
        "/api/v1/users", json={"username": "dora", "password": PASSWORD, "region": "south"}
    )
    assert resp.status_code == 422
    assert resp.json()["type"].endswith("/unknown-region")
    assert (await stack.register("dora"))["username"] == "dora"


async def test_unreachable_target_region_is_503_and_no_account_appears(
    stack: IdentityStack,
) -> None:
    stack.router.down.add("sv-user-west")
    try:
        resp = await stack.users("east").post(
            "/api/v1/users", json={"username": "erin", "password": PASSWORD, "region": "west"}
        )
    finally:
        stack.router.down.clear()
    assert resp.status_code == 503
    assert resp.headers["content-type"] == "application/problem+json"
    for region in ("east", "west"):
        assert "erin" not in [u.username for u in await users_in(stack, region)]


async def test_profile_read_and_update_by_the_user_of_its_region(stack: IdentityStack) -> None:
    created = await stack.register("frank", region="west")
    identity = await login_identity(stack, "frank")
    resp = await me(stack, identity)
    assert resp.status_code == 200
    assert resp.json()["id"] == created["id"]
    assert resp.json()["region"] == "west"
    updated = await me(
        stack, identity, method="PATCH", json={"email": "f@x.io", "display_name": "Frank"}
    )
    assert updated.status_code == 200
    assert updated.json()["display_name"] == "Frank"
    cleared = await me(stack, identity, method="PATCH", json={"email": None})
    assert cleared.json()["email"] is None
    assert cleared.json()["display_name"] == "Frank"
    bad = await me(stack, identity, method="PATCH", json={"username": "root"})
    assert bad.status_code == 422


async def test_profile_needs_an_identity_signed_by_the_gateway(stack: IdentityStack) -> None:
    await stack.register("gina", region="east")
    identity = await login_identity(stack, "gina")
    client = stack.users("east")
    assert (await client.get("/api/v1/users/me")).status_code == 401
    forged = ServiceSigner("gateway-api", "guessed-secret").sign(
        "GET", "/api/v1/users/me", None, destination="sv-user", identity=identity.encode()
    )
    assert (await client.get("/api/v1/users/me", headers=forged)).status_code == 401
    not_gateway = ServiceSigner("sv-money", "local-dev-service-secret-change-me").sign(
        "GET", "/api/v1/users/me", None, destination="sv-user", identity=identity.encode()
    )
    assert (await client.get("/api/v1/users/me", headers=not_gateway)).status_code == 401


async def test_password_change_needs_the_current_password_and_ends_other_sessions(
    stack: IdentityStack,
) -> None:
    await stack.register("hank", region="east")
    web = await login_identity(stack, "hank", "web")
    app_login = await stack.login("hank", PASSWORD, "app")
    path = "/api/v1/users/me/password"
    wrong = await me(
        stack,
        web,
        method="POST",
        path=path,
        json={"current_password": "not it at all", "new_password": "new horse 22"},
    )
    assert wrong.status_code == 403
    changed = await me(
        stack,
        web,
        method="POST",
        path=path,
        json={"current_password": PASSWORD, "new_password": "new horse 22"},
    )
    assert changed.status_code == 204
    assert (await stack.login("hank", PASSWORD, "mini")).status_code == 401
    assert (await stack.login("hank", "new horse 22", "mini")).status_code == 200
    # The app session ended with the change; the web session that made it did not.
    refreshed = await stack.auth.post(
        "/api/v1/auth/refresh", json={"refresh_token": app_login.json()["refresh_token"]}
    )
    assert refreshed.status_code == 401
    sessions = await stack.auth.get(
        "/api/v1/auth/sessions", headers=as_gateway("GET", "/api/v1/auth/sessions", web)
    )
    assert {s["client_type"] for s in sessions.json()["items"]} == {"web", "mini"}


async def test_admin_listing_pages_through_the_region_by_username(stack: IdentityStack) -> None:
    for name in ["ivy", "jack", "kate", "liam"]:
        await stack.register(name, region="east")
    plain = await login_identity(stack, "ivy")
    # A signed identity without users:list is refused by sv-user itself (403), whatever
    # route brought it here.
    refused = await me(stack, plain, path="/api/v1/users?limit=2")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    identity = await stack.admin_identity()
    identity = Identity(identity.user_id, identity.username, "east", identity.session_id, "app")
    names: list[str] = []
    path = "/api/v1/users?limit=2"
    while True:
        resp = await me(stack, identity, path=path)
        assert resp.status_code == 200
        page = resp.json()
        assert len(page["items"]) <= 2
        assert all("password_hash" not in u for u in page["items"])
        names += [u["username"] for u in page["items"]]
        if page["next"] is None:
            break
        path = f"/api/v1/users?limit=2&after={page['next']}"
    assert names == sorted(set(names))
    assert {"admin", "ivy", "jack", "kate", "liam"} <= set(names)
    assert (await me(stack, identity, path="/api/v1/users?limit=0")).status_code == 422


async def test_credential_check_is_internal_and_says_only_yes_or_no(stack: IdentityStack) -> None:
    created = await stack.register("mona", region="east")
    client = stack.users("east")
    path = "/internal/credentials/verify"

    async def check(username: str, password: str, *, sign: bool = True) -> httpx.Response:
        body = httpx.Request("POST", "http://x", json={"username": username, "password": password})
        content = body.read()
        headers = {"content-type": "application/json"}
        if sign:
            headers.update(signed("POST", path, content))
        return await client.post(path, content=content, headers=headers)

    ok = await check("MONA", PASSWORD)
    assert ok.status_code == 200
    assert ok.json()["id"] == created["id"]
    wrong, unknown = await check("mona", "nope nope 1"), await check("nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["type"] == unknown.json()["type"]
    assert (await check("mona", PASSWORD, sign=False)).status_code == 401


async def test_a_saturated_hashing_pool_answers_login_503_with_retry_after(
    stack: IdentityStack,
) -> None:
    await stack.register("olga", region="east")
    passwords = stack.apps["sv-user-east"].state.passwords
    limit, passwords.limit = passwords.limit, 0  # as if every thread and queue slot were taken
    try:
        refused = await stack.login("olga", PASSWORD)
    finally:
        passwords.limit = limit
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["type"].endswith("/credential-check-unavailable")
    assert (await stack.login("olga", PASSWORD)).status_code == 200


async def test_passwords_are_stored_as_argon2id_at_least_owasp_cost(stack: IdentityStack) -> None:
    await stack.register("nina", region="east")
    (user,) = [u for u in await users_in(stack, "east") if u.username == "nina"]
    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in user.password_hash


@pytest.mark.integration
async def test_registration_and_profile_on_postgresql_and_redis(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    async with identity_stack(tmp_path, pg_url=pg_url, redis_url=redis_url) as stack:
        created = await stack.register("oscar", region="west")
        duplicate = await stack.users("east").post(
            "/api/v1/users", json={"username": "OSCAR", "password": PASSWORD}
        )
        assert duplicate.status_code == 409
        identity = await login_identity(stack, "oscar")
        resp = await me(stack, identity)
        assert resp.json()["id"] == created["id"]
        assert [u.username for u in await users_in(stack, "west")] == ["oscar"]
