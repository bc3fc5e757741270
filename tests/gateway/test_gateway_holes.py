"""Smaller holes at the edge, each closed and shown with real bytes through the gateway.

Method allowlists, upgrades only where a route opts in, a stray ``101`` or stray bytes
from an upstream, ``Host`` exactly once, client-sent ``Forwarded``/``X-Real-IP``,
``x-edge-instance``, authenticated routes before the revoked sessions are known, and
trusted proxies given as CIDR networks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from edgelib.jwt import JwksCache, TokenVerifier
from edgelib.keyring import Keyring
from gateway_api.admin.app import create_app
from gateway_api.config import Settings
from gateway_api.gateway import Gateway
from gateway_api.proxy import bad_request, create_public_app
from gateway_api.security.authn import Authenticator
from gateway_api.security.sessions import RevokedSessions
from gateway_api.security.trusted_proxies import TrustedProxies
from gateway_api.transport.server import HttpServer
from tests.gateway.conftest import GatewayUnderTest, serve, start_gateway
from tests.gateway.test_websocket_sessions import Issuer
from tests.worker import free_port


async def send(url: str, raw: bytes, timeout: float = 5) -> bytes:
    """``raw`` on a new connection; everything answered until the gateway closes."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def problem(data: bytes) -> tuple[bytes, dict[str, Any]]:
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), head
    return head.lower(), orjson.loads(body)


def upstream_requests(gw: GatewayUnderTest) -> int:
    return sum(state.requests for state in gw.upstreams.values())


# -- methods and upgrades -------------------------------------------------------------


@pytest.mark.parametrize("method", [b"TRACE", b"CONNECT"])
async def test_trace_and_connect_are_refused_405_with_allow_and_never_forwarded(
    gw: GatewayUnderTest, method: bytes
) -> None:
    data = await send(
        gw.url,
        method + b" /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 405"), data[:300]
    head, doc = problem(data)
    assert b"allow: delete, get, head, options, patch, post, put\r\n" in head
    assert doc["type"].endswith("/method-not-allowed")
    assert upstream_requests(gw) == 0


async def test_an_upgrade_is_refused_on_a_route_that_did_not_opt_in_and_on_post(
    gw: GatewayUnderTest,
) -> None:
    upgrade = (
        b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    plain = await send(gw.url, b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\n" + upgrade)
    assert plain.startswith(b"HTTP/1.1 400"), plain[:300]
    assert problem(plain)[1]["type"].endswith("/upgrade-refused")
    post = await send(
        gw.url, b"POST /api/v1/echo/ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" + upgrade
    )
    assert post.startswith(b"HTTP/1.1 400"), post[:300]
    assert upstream_requests(gw) == 0
    # The route that opted in takes it.
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /api/v1/echo/ws HTTP/1.1\r\nHost: x\r\n" + upgrade)
    ws = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert ws.startswith(b"HTTP/1.1 101"), ws[:300]


# -- Host, Forwarded, X-Real-IP, x-edge-instance ----------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /api/v1/echo/x HTTP/1.1\r\n\r\n",
        b"GET /api/v1/echo/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /api/v1/echo/x HTTP/1.0\r\n\r\n",
    ],
    ids=["no Host", "two Host", "HTTP/1.0 without Host"],
)
async def test_a_request_without_exactly_one_host_is_400(gw: GatewayUnderTest, raw: bytes) -> None:
    data = await send(gw.url, raw)
    assert data.startswith(b"HTTP/1.1 400"), data[:300]
    assert "Host" in problem(data)[1]["detail"]
    assert upstream_requests(gw) == 0


async def test_client_forwarded_and_x_real_ip_headers_never_reach_the_service(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    resp = await client.get(
        gw.url + "/api/v1/echo/x",
        headers={"Forwarded": "for=10.9.9.9;proto=https", "X-Real-IP": "10.9.9.9"},
    )
    assert resp.status_code == 200
    names = {name for name, _ in resp.json()["headers"]}
    assert "forwarded" not in names
    assert "x-real-ip" not in names
    assert "10.9.9.9" not in str(resp.json()["headers"])


async def test_x_edge_instance_reaches_clients_only_when_a_setting_asks(
    tmp_path: Path, gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    # Off by default, in every profile: the header names internal instances.
    hidden = await client.get(gw.url + "/api/v1/echo/x")
    assert hidden.status_code == 200
    assert "x-edge-instance" not in hidden.headers
    (tmp_path / "exposed").mkdir()
    async for exposed in start_gateway(tmp_path / "exposed", {"a": 1}, expose_instance=True):
        resp = await client.get(exposed.url + "/api/v1/echo/x")
        assert resp.status_code == 200
        assert resp.headers["x-edge-instance"] == f"echo-{resp.headers['x-upstream']}"
    assert Settings(profile="local").instance_header_exposed is False
    assert Settings(
        profile="prod", service_keys=Keyring("gateway-api").to_json(), expose_instance=True
    ).instance_header_exposed


# -- authenticated routes before the revoked sessions are known -------------------------


async def test_authenticated_routes_answer_503_until_the_revoked_sessions_have_loaded(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    issuer = Issuer()
    feed_up = False

    async def feed(since: float) -> dict[str, Any]:
        if not feed_up:
            raise ConnectionError("auth-jwt is not up yet")
        return await issuer.feed(since)

    verifier = TokenVerifier(
        JwksCache(issuer.jwks, algorithms=["EdDSA"]),
        issuer="edge-auth",
        audience="edge",
        algorithms=["EdDSA"],
    )
    authn = Authenticator(verifier, RevokedSessions(feed, poll_interval=0.05))
    await authn.start()
    if gw.gateway.security.authn is not None:
        await gw.gateway.security.authn.stop()
    gw.gateway.security.authn = authn
    try:
        headers = {"Authorization": f"Bearer {issuer.token('s-1')}"}
        refused = await client.get(gw.url + "/api/v1/private/x", headers=headers)
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["type"].endswith("/revocations-unavailable")
        assert upstream_requests(gw) == 0
        # Without a token it is a 401 as ever: nothing to check against the set.
        assert (await client.get(gw.url + "/api/v1/private/x")).status_code == 401
        feed_up = True
        deadline = time.monotonic() + 3
        while not authn.revoked.loaded and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        ok = await client.get(gw.url + "/api/v1/private/x", headers=headers)
        assert ok.status_code == 200, ok.text
    finally:
        await authn.stop()


# -- trusted proxies as networks --------------------------------------------------------


def test_trusted_proxies_take_addresses_and_cidr_networks() -> None:
    trusted = TrustedProxies("10.0.0.0/8, 192.0.2.7, fd00::/8")
    assert trusted.covers("10.20.30.40")
    assert trusted.covers("192.0.2.7")
    assert not trusted.covers("192.0.2.8")
    assert trusted.covers("fd12::1")
    assert not trusted.covers("fe80::1")
    assert trusted.covers("::ffff:10.1.2.3")  # an IPv4 peer on a dual-stack socket
    assert not trusted.covers("unknown")
    assert not trusted.covers("")
    assert not TrustedProxies("").covers("10.0.0.1")
    with pytest.raises(ValueError, match="not an IP address or network"):
        Settings(trusted_proxies="10.0.0.0/33")


@pytest.mark.parametrize(
    ("trusted", "seen_client"), [("127.0.0.0/8", "203.0.113.9"), ("10.0.0.0/8", "127.0.0.1")]
)
async def test_a_load_balancer_inside_a_trusted_network_names_the_client(
    tmp_path: Path, client: httpx.AsyncClient, trusted: str, seen_client: str
) -> None:
    async for gw in start_gateway(tmp_path, {"a": 1}, trusted_proxies=trusted):
        resp = await client.get(
            gw.url + "/api/v1/echo/x", headers={"X-Forwarded-For": "203.0.113.9"}
        )
        forwarded = dict(resp.json()["headers"])["x-forwarded-for"]
        assert forwarded.rsplit(", ", 1)[-1] == seen_client


# -- upstreams that misbehave -------------------------------------------------------------


class RawUpstream:
    """An HTTP/1.1 upstream written by hand, to answer what no real server would."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, bytes]] = []
        self._ids = itertools.count(1)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = next(self._ids)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                self.seen.append((conn, path))
                if path == b"/api/v1/raw/switch":
                    writer.write(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\n\r\n"
                    )
                elif path == b"/api/v1/raw/stray":
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst")
                    await writer.drain()
                    await asyncio.sleep(0.1)
                    # Unasked for, on the now idle connection: a head whose body would
                    # swallow the answer to whatever request came next.
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 200\r\n\r\n")
                else:
                    body = b"ok:" + path
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body))
                    writer.write(body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_gateway(tmp_path: Path, upstream: RawUpstream) -> AsyncIterator[str]:
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    (tmp_path / "topology.toml").write_text(
        f'[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n'
        f'[[services]]\nname = "raw"\ninstances = [{{ port = {port} }}]\n'
    )
    (tmp_path / "routes.toml").write_text(
        '[[routes]]\nprefix = "/api/v1/raw"\nservice = "raw"\naccess = "public"\nretries = 0\n'
    )
    public, admin = free_port(), free_port()
    settings = Settings(
        port=public,
        admin_port=admin,
        topology=tmp_path / "topology.toml",
        routes=tmp_path / "routes.toml",
        var_dir=tmp_path,
    )
    gateway = Gateway(settings)
    admin_app = create_app(settings, gateway)
    try:
        async with admin_app.router.lifespan_context(admin_app):
            uv, task = await serve(admin_app, admin)
            http = HttpServer(create_public_app(gateway), bad_request=bad_request)
            await http.start("127.0.0.1", public)
            try:
                yield f"http://127.0.0.1:{public}"
            finally:
                await http.stop(grace=0.5)
                uv.should_exit = True
                await task
    finally:
        server.close()
        await server.wait_closed()


async def test_a_101_to_a_request_that_asked_for_no_upgrade_becomes_502(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    upstream = RawUpstream()
    async with raw_gateway(tmp_path, upstream) as url:
        resp = await client.get(url + "/api/v1/raw/switch")
        assert resp.status_code == 502
        assert resp.headers["content-type"] == "application/problem+json"
        assert (await client.get(url + "/api/v1/raw/next")).text == "ok:/api/v1/raw/next"


async def test_unexpected_bytes_on_an_idle_pooled_connection_discard_it(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    upstream = RawUpstream()
    async with raw_gateway(tmp_path, upstream) as url:
        assert (await client.get(url + "/api/v1/raw/stray")).text == "first"
        await asyncio.sleep(0.3)  # the stray head reaches the pooled connection
        after = await client.get(url + "/api/v1/raw/after")
        assert after.status_code == 200
        assert after.text == "ok:/api/v1/raw/after"
        conns = dict((path, conn) for conn, path in upstream.seen)
        assert conns[b"/api/v1/raw/after"] != conns[b"/api/v1/raw/stray"]
