"""A WebSocket tunnel opened with a token ends when that token's session is revoked."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from edgelib.jwt import JwksCache, TokenVerifier
from gateway_api.security.authn import Authenticator
from gateway_api.security.sessions import RevokedSessions
from tests.gateway.conftest import GatewayUnderTest

HANDSHAKE = (
    b"GET /api/v1/private/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
    b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer %s\r\n\r\n"
)


class Issuer:
    """Tokens signed with a local key, and the revocation feed the gateway polls."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.revocations: list[dict[str, Any]] = []

    async def jwks(self) -> dict[str, Any]:
        jwk = OKPAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": "k1", "alg": "EdDSA"}]}

    async def feed(self, since: float) -> dict[str, Any]:
        return {"now": time.time(), "revocations": list(self.revocations)}

    def token(self, sid: str) -> str:
        now = int(time.time())
        claims = {
            "iss": "edge-auth", "aud": "edge", "sub": f"user-{sid}", "region": "east",
            "preferred_username": f"user-{sid}", "sid": sid, "client_type": "web",
            "jti": uuid.uuid4().hex, "iat": now, "exp": now + 600,
        }  # fmt: skip
        return jwt.encode(
            claims, self.key, algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt"}
        )


@pytest.fixture
async def issuer(gw: GatewayUnderTest) -> AsyncIterator[Issuer]:
    issuer = Issuer()
    verifier = TokenVerifier(
        JwksCache(issuer.jwks, algorithms=["EdDSA"]),
        issuer="edge-auth",
        audience="edge",
        algorithms=["EdDSA"],
    )
    await verifier.keys.refresh()
    authn = Authenticator(verifier, RevokedSessions(issuer.feed, poll_interval=0.05))
    await authn.start()
    if gw.gateway.security.authn is not None:  # the one wired to the (absent) auth-jwt
        await gw.gateway.security.authn.stop()
    gw.gateway.security.authn = authn
    yield issuer
    await authn.stop()


async def open_tunnel(
    gw: GatewayUnderTest, token: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(HANDSHAKE % token.encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, text: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(text))
    writer.write(bytes([0x81, 0x80 | len(text)]) + mask + masked)
    await writer.drain()
    frame = await asyncio.wait_for(reader.readexactly(2), 5)
    return await asyncio.wait_for(reader.readexactly(frame[1] & 0x7F), 5)


async def test_revoking_the_session_closes_its_websocket_and_only_its_own(
    gw: GatewayUnderTest, issuer: Issuer
) -> None:
    reader, writer = await open_tunnel(gw, issuer.token("s-ann"))
    other_reader, other_writer = await open_tunnel(gw, issuer.token("s-bob"))
    assert (await echo(reader, writer, b"hi")).endswith(b":hi")
    assert gw.gateway.security.authn is not None
    assert gw.gateway.security.authn.revoked.snapshot()["watched_connections"] == 2

    issuer.revocations.append({"sid": "s-ann", "exp": time.time() + 600})  # logout
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the gateway
    assert time.monotonic() - started < 2

    # The other session's tunnel still relays, and the closed one is no longer watched.
    assert (await echo(other_reader, other_writer, b"yo")).endswith(b":yo")
    assert gw.gateway.security.authn.revoked.snapshot()["watched_connections"] == 1
    other_writer.close()
    writer.close()
    # A new upgrade with the revoked token is refused like any request.
    host, port = gw.url.removeprefix("http://").split(":")
    again_reader, again_writer = await asyncio.open_connection(host, int(port))
    again_writer.write(HANDSHAKE % issuer.token("s-ann").encode())
    await again_writer.drain()
    head = await asyncio.wait_for(again_reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 401")
    again_writer.close()


async def test_a_tunnel_that_ends_first_stops_watching(
    gw: GatewayUnderTest, issuer: Issuer
) -> None:
    reader, writer = await open_tunnel(gw, issuer.token("s-cy"))
    assert (await echo(reader, writer, b"hi")).endswith(b":hi")
    assert gw.gateway.security.authn is not None
    writer.close()
    deadline = time.monotonic() + 5
    while (
        gw.gateway.security.authn.revoked.snapshot()["watched_connections"]
        and time.monotonic() < deadline
    ):
        await asyncio.sleep(0.02)
    assert gw.gateway.security.authn.revoked.snapshot()["watched_connections"] == 0


async def test_watching_a_session_already_revoked_fires_at_once_and_bad_callbacks_are_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def feed(since: float) -> dict[str, Any]:
        return {"now": time.time(), "revocations": []}

    revoked = RevokedSessions(feed)
    revoked.add("gone", time.time() + 60)
    fired: list[str] = []
    revoked.watch("gone", lambda: fired.append("gone"))
    assert fired == ["gone"]

    def broken() -> None:
        raise RuntimeError("boom")

    revoked.watch("live", broken)
    revoked.watch("live", lambda: fired.append("live"))
    revoked.add("live", time.time() + 60)
    assert fired == ["gone", "live"]  # the broken callback did not stop the next one
    assert "revocation callback failed" in caplog.text
    assert revoked.watched == 0
