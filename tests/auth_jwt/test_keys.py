"""Signing keys: JWKS, rotation by admin call and by schedule, retirement, storage."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from sqlalchemy import select

from auth_jwt.keys.ring import KeyRing
from auth_jwt.maintenance import Maintenance
from auth_jwt.models import SigningKey
from edgelib.backends import MemoryBackend
from edgelib.db import Database
from edgelib.jwt import JwksCache, TokenVerifier
from tests.identity_harness import (
    ADMIN_PASSWORD,
    IdentityStack,
    as_gateway,
    identity_of,
    identity_stack,
)

PASSWORD = "correct horse 1"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[IdentityStack]:
    async with identity_stack(tmp_path_factory.mktemp("keys")) as s:
        yield s


async def fresh_login(stack: IdentityStack) -> dict[str, Any]:
    name = f"k{uuid.uuid4().hex[:10]}"
    await stack.register(name, PASSWORD)
    resp = await stack.login(name, PASSWORD)
    assert resp.status_code == 200
    body: dict[str, Any] = resp.json()
    return body


def verifier_for(stack: IdentityStack) -> TokenVerifier:
    async def fetch() -> Any:
        return (await stack.auth.get("/.well-known/jwks.json")).json()

    return TokenVerifier(
        JwksCache(fetch, min_refetch_interval=0), issuer="edge-auth", audience="edge"
    )


async def admin_login(stack: IdentityStack) -> dict[str, Any]:
    resp = await stack.login("admin", ADMIN_PASSWORD)
    assert resp.status_code == 200
    body: dict[str, Any] = resp.json()
    return body


async def rotate(stack: IdentityStack, pair: dict[str, Any]) -> httpx.Response:
    path = "/api/v1/auth/keys/rotate"
    identity = identity_of(pair["access_token"])
    return await stack.auth.post(path, headers=as_gateway("POST", path, identity))


async def test_jwks_is_public_cacheable_and_holds_only_public_signing_keys(
    stack: IdentityStack,
) -> None:
    resp = await stack.auth.get("/.well-known/jwks.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/jwk-set+json")
    assert "max-age" in resp.headers["cache-control"]
    for key in resp.json()["keys"]:
        assert key["use"] == "sig"
        assert key["alg"] == "ES256"
        assert "d" not in key


async def test_rotation_signs_with_a_new_key_and_keeps_the_old_one_published(
    stack: IdentityStack,
) -> None:
    before = await fresh_login(stack)
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]
    resp = await rotate(stack, await admin_login(stack))
    assert resp.status_code == 200
    rotated = resp.json()
    assert rotated["kid"] != old_kid
    assert rotated["published"][0] == rotated["kid"]
    assert old_kid in rotated["published"]

    after = await fresh_login(stack)
    assert jwt.get_unverified_header(after["access_token"])["kid"] == rotated["kid"]
    verifier = verifier_for(stack)
    # Tokens signed before the rotation keep verifying until they expire.
    assert (await verifier.verify(before["access_token"]))["sub"]
    assert (await verifier.verify(after["access_token"]))["sub"]


async def test_rotation_by_a_signed_user_without_keys_rotate_is_403(
    stack: IdentityStack,
) -> None:
    # As if a wrong route table had sent a plain user's request here: auth-jwt checks
    # keys:rotate itself.
    resp = await rotate(stack, await fresh_login(stack))
    assert resp.status_code == 403
    assert resp.headers["content-type"] == "application/problem+json"
    assert "keys:rotate" in resp.json()["detail"]


async def test_rotation_needs_the_gateway_identity(stack: IdentityStack) -> None:
    resp = await stack.auth.post("/api/v1/auth/keys/rotate")
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"


async def test_private_keys_are_stored_encrypted(stack: IdentityStack) -> None:
    database: Database = stack.apps["auth-jwt"].state.database
    async with database.sessions() as session:
        keys = list((await session.execute(select(SigningKey))).scalars())
    assert keys
    for key in keys:
        assert key.private_pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")


async def ring(database: Database, *, publish_after: float) -> KeyRing:
    keys = KeyRing(
        database,
        alg="ES256",
        passphrase=b"test-passphrase",
        publish_after_retirement=publish_after,
        reload_interval=0.0,
    )
    await keys.start()
    return keys


async def test_retired_keys_leave_the_jwks_once_their_tokens_have_expired(tmp_path: Path) -> None:
    from auth_jwt.main import MIGRATIONS
    from edgelib.migrations import upgrade_async

    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    await upgrade_async(
        MIGRATIONS, url, schema=None, version_table="alembic_version_auth_jwt", lock_dir=tmp_path
    )
    database = Database(url)
    try:
        long_lived = await ring(database, publish_after=3600)
        first = (await long_lived.signing_key()).kid
        second = (await long_lived.rotate()).kid
        assert [k["kid"] for k in (await long_lived.jwks(max_age=0))["keys"]] == [second, first]

        short_lived = await ring(database, publish_after=0)
        third = (await short_lived.rotate()).kid
        published = [k["kid"] for k in (await short_lived.jwks(max_age=0))["keys"]]
        # `second` retired with nothing left to verify; `first` still has its hour.
        assert published == [third, first]
        assert await short_lived.purge() == 1
    finally:
        await database.dispose()


async def test_scheduled_rotation_happens_when_the_key_is_old_enough(tmp_path: Path) -> None:
    from auth_jwt.main import MIGRATIONS
    from edgelib.migrations import upgrade_async

    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    await upgrade_async(
        MIGRATIONS, url, schema=None, version_table="alembic_version_auth_jwt", lock_dir=tmp_path
    )
    database = Database(url)
    try:
        keys = await ring(database, publish_after=60)
        first = (await keys.signing_key()).kid
        patient = Maintenance(keys, database, MemoryBackend(), rotation_interval=3600, interval=1)
        assert await patient.rotate_if_due() is False
        due = Maintenance(keys, database, MemoryBackend(), rotation_interval=0.001, interval=1)
        assert await due.rotate_if_due() is True
        assert (await keys.signing_key()).kid != first
        await due.purge()
    finally:
        await database.dispose()
