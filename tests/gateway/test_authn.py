"""The gateway's authentication: local token verification and revoked sessions.

auth-jwt, sv-user and sv-region run in-process (tests/identity_harness.py); the
:class:`Authenticator` reads the JWKS and the revocation feed from that auth-jwt.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from edgelib.backends import MemoryBackend
from edgelib.jwt import JwksCache, TokenVerifier
from edgelib.problems import Unauthorized
from gateway_api.security.authn import Authenticator, bearer_token
from gateway_api.security.sessions import RevokedSessions
from tests.identity_harness import IdentityStack, as_gateway, identity_of, identity_stack, signed
from tests.token_forgery import bad_tokens

PASSWORD = "correct horse 1"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[IdentityStack]:
    async with identity_stack(tmp_path_factory.mktemp("authn")) as s:
        yield s


def authenticator_for(
    stack: IdentityStack, *, poll_interval: float = 0.05, backend: Any = None
) -> Authenticator:
    async def jwks() -> Any:
        return (await stack.auth.get("/.well-known/jwks.json")).json()

    async def revocations(since: float) -> Any:
        path = f"/internal/revocations?since={since}"
        return (await stack.auth.get(path, headers=signed("GET", path))).json()

    verifier = TokenVerifier(
        JwksCache(jwks, min_refetch_interval=1.0), issuer="edge-auth", audience="edge"
    )
    revoked = RevokedSessions(revocations, backend=backend, poll_interval=poll_interval)
    return Authenticator(verifier, revoked)


@pytest_asyncio.fixture(loop_scope="module")
async def authn(stack: IdentityStack) -> AsyncIterator[Authenticator]:
    authenticator = authenticator_for(stack)
    await authenticator.start()
    yield authenticator
    await authenticator.stop()


def scope_with(authorization: str | None) -> dict[str, Any]:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return {"type": "http", "headers": headers}


async def logged_in(stack: IdentityStack, client_type: str = "web") -> dict[str, Any]:
    name = f"g{uuid.uuid4().hex[:10]}"
    await stack.register(name, PASSWORD, region="west")
    resp = await stack.login(name, PASSWORD, client_type)
    assert resp.status_code == 200
    body: dict[str, Any] = resp.json()
    return body


async def test_valid_token_becomes_the_identity_forwarded_to_services(
    stack: IdentityStack, authn: Authenticator
) -> None:
    pair = await logged_in(stack, "mini")
    identity = await authn.authenticate(scope_with(f"Bearer {pair['access_token']}"))
    assert identity == identity_of(pair["access_token"])
    assert identity.region == "west"
    assert identity.client_type == "mini"


@pytest.mark.parametrize(
    "authorization", [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "bearer"]
)
async def test_missing_or_malformed_authorization_is_401_with_a_bearer_challenge(
    authn: Authenticator, authorization: str | None
) -> None:
    with pytest.raises(Unauthorized) as refused:
        await authn.authenticate(scope_with(authorization))
    assert refused.value.status_code == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")


async def test_every_kind_of_bad_token_is_refused_with_401(
    stack: IdentityStack, authn: Authenticator
) -> None:
    pair = await logged_in(stack)
    key = await stack.apps["auth-jwt"].state.keys.signing_key()
    for kind, token in bad_tokens(pair["access_token"], key.kid, key.private_key).items():
        with pytest.raises(Unauthorized) as refused:
            await authn.authenticate(scope_with(f"Bearer {token}"))
        assert refused.value.status_code == 401, kind
        assert 'error="invalid_token"' in refused.value.headers["WWW-Authenticate"], kind
    # The genuine token still passes: nothing above poisoned the caches.
    assert await authn.authenticate(scope_with(f"Bearer {pair['access_token']}"))


async def test_logged_out_session_is_refused_after_the_next_poll(
    stack: IdentityStack, authn: Authenticator
) -> None:
    pair = await logged_in(stack)
    scope = scope_with(f"Bearer {pair['access_token']}")
    identity = await authn.authenticate(scope)
    path = "/api/v1/auth/logout"
    assert (
        await stack.auth.post(path, headers=as_gateway("POST", path, identity))
    ).status_code == 204
    started = time.monotonic()
    while not authn.revoked.is_revoked(identity.session_id):
        assert time.monotonic() - started < 1.0, "revocation not seen within 1 s"
        await asyncio.sleep(0.01)
    with pytest.raises(Unauthorized) as refused:
        await authn.authenticate(scope)
    assert refused.value.type_slug == "session-revoked"


async def test_pubsub_revocation_is_honoured_without_waiting_for_a_poll(
    stack: IdentityStack,
) -> None:
    # The gateway listens on the same backend auth-jwt publishes to; polling is slow here.
    backend = stack.apps["auth-jwt"].state.backend
    authn = authenticator_for(stack, poll_interval=60.0, backend=backend)
    await authn.start()
    try:
        await asyncio.sleep(0.05)  # let the subscription register
        first = await logged_in(stack, "web")
        scope = scope_with(f"Bearer {first['access_token']}")
        identity = await authn.authenticate(scope)
        resp = await stack.login(identity.username, PASSWORD, "web")
        assert resp.status_code == 200
        started = time.monotonic()
        while not authn.revoked.is_revoked(identity.session_id):
            assert time.monotonic() - started < 0.5
            await asyncio.sleep(0.005)
        with pytest.raises(Unauthorized):
            await authn.authenticate(scope)
        assert authn.revoked.polls == 1  # only the initial load
    finally:
        await authn.stop()


async def test_revocations_are_loaded_at_start_and_forgotten_once_expired() -> None:
    now = time.time()
    calls: list[float] = []

    async def feed(since: float) -> dict[str, Any]:
        calls.append(since)
        return {
            "now": now,
            "revocations": [{"sid": "old", "exp": now - 1}, {"sid": "live", "exp": now + 60}],
        }

    revoked = RevokedSessions(feed, poll_interval=60)
    await revoked.start()
    try:
        assert revoked.is_revoked("live")
        assert not revoked.is_revoked("old")
        assert calls == [0.0]
        await revoked.poll()
        assert calls[-1] == pytest.approx(now - revoked.overlap)
    finally:
        await revoked.stop()


async def test_a_failing_feed_keeps_what_is_known_and_recovers() -> None:
    state = {"up": True}

    async def feed(since: float) -> dict[str, Any]:
        if not state["up"]:
            raise OSError("auth-jwt down")
        return {"now": time.time(), "revocations": [{"sid": "s1", "exp": time.time() + 60}]}

    revoked = RevokedSessions(feed, backend=MemoryBackend(), poll_interval=60)
    assert await revoked.poll()
    state["up"] = False
    assert not await revoked.poll()
    assert revoked.is_revoked("s1")
    assert revoked.snapshot()["feed"] == "failing"
    state["up"] = True
    assert await revoked.poll()
    assert revoked.snapshot()["feed"] == "ok"


async def test_bearer_token_is_read_from_the_authorization_header_only() -> None:
    assert bearer_token([(b"authorization", b"Bearer abc.def.ghi")]) == "abc.def.ghi"
    assert bearer_token([(b"authorization", b"BEARER abc")]) == "abc"
    assert bearer_token([(b"x-authorization", b"Bearer abc")]) is None
    assert bearer_token([(b"authorization", b"Bearer  ")]) is None


async def test_authentication_of_a_known_token_costs_microseconds(
    stack: IdentityStack, authn: Authenticator
) -> None:
    pair = await logged_in(stack)
    scope = scope_with(f"Bearer {pair['access_token']}")
    await authn.authenticate(scope)
    rounds = 20_000
    started = time.perf_counter()
    for _ in range(rounds):
        await authn.authenticate(scope)
    per_call = (time.perf_counter() - started) / rounds
    # A dictionary hit for the token and one for the session; generous bound for slow CI.
    assert per_call < 100e-6


async def test_a_verified_header_is_known_until_revoked_or_expired(
    stack: IdentityStack, authn: Authenticator
) -> None:
    pair = await logged_in(stack)
    scope = scope_with(f"Bearer {pair['access_token']}")
    assert authn.known(scope["headers"]) is None  # never verified: the slow path decides
    identity = await authn.authenticate(scope)
    assert authn.known(scope["headers"]) == (identity, identity.encode().encode())
    assert authn.known(scope_with(None)["headers"]) is None
    assert authn.known(scope_with(f"Bearer {pair['access_token']}x")["headers"]) is None
    # Same last bytes, another token: found by its suffix, refused by the whole compare.
    forged = "Bearer forged." + pair["access_token"][-40:]
    assert authn.known(scope_with(forged)["headers"]) is None
    # Past its validity the fast path no longer answers (verify() then says 401).
    value = scope["headers"][0][1]
    key = value[-32:]
    whole, ident, encoded, _ = authn._known[key]
    authn._known[key] = (whole, ident, encoded, time.time() - 1)
    assert authn.known(scope["headers"]) is None
    authn._known[key] = (whole, ident, encoded, time.time() + 60)
    authn.revoked.add(identity.session_id, time.time() + 60)
    assert authn.known(scope["headers"]) is None
    with pytest.raises(Unauthorized) as refused:
        await authn.authenticate(scope)
    assert refused.value.type_slug == "session-revoked"
