"""Forwarding: headers, streaming, retries, timeouts, breakers, reloads, WebSockets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import httpx
import jwt
import pytest

from tests.gateway.conftest import GatewayUnderTest, start_gateway


def header(resp: httpx.Response, name: str) -> list[str]:
    return [v for k, v in resp.json()["headers"] if k == name]


async def test_forwarded_headers_set_and_hop_by_hop_dropped_both_ways(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    resp = await client.get(
        gw.url + "/api/v1/echo/x?q=1",
        headers={
            "connection": "x-hop",
            "x-hop": "should-not-pass",
            "x-forwarded-for": "203.0.113.9",
            "x-request-id": "rid-1",
            "keep-alive": "timeout=5",
            "te": "trailers",
        },
    )
    assert resp.status_code == 200
    assert header(resp, "x-hop") == []
    assert header(resp, "keep-alive") == []
    assert header(resp, "te") == []
    assert header(resp, "x-forwarded-for") == ["203.0.113.9, 127.0.0.1"]
    assert header(resp, "x-forwarded-proto") == ["http"]
    assert header(resp, "x-forwarded-host") == [gw.url.removeprefix("http://")]
    assert header(resp, "x-request-id") == ["rid-1"]
    assert len(header(resp, "traceparent")) == 1
    assert resp.json()["query"] == "q=1"
    assert resp.headers["x-request-id"] == "rid-1"
    # The upstream's hop-by-hop answer headers stop at the gateway.
    assert "x-secret-hop" not in resp.headers


async def test_client_cannot_forge_internal_identity_headers(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    resp = await client.get(
        gw.url + "/api/v1/echo/x",
        headers={
            "x-edge-identity": "sub=admin&name=admin&region=east&sid=x&ct=web",
            "x-edge-service": "gateway-api",
            "x-edge-signature": "deadbeef",
            "X-Edge-Timestamp": "1",
        },
    )
    names = {k for k, _ in resp.json()["headers"]}
    assert not {n for n in names if n.startswith("x-edge-")}


async def test_incoming_traceparent_is_continued_not_copied(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    resp = await client.get(gw.url + "/api/v1/echo/x", headers={"traceparent": parent})
    [forwarded] = header(resp, "traceparent")
    assert forwarded.split("-")[1] == trace_id
    assert forwarded != parent


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/echo/../../internal/secret",
        "/api/v1/echo/%2e%2e/%2e%2e/internal/secret",
        "/api/v1/echo/..%2f..%2finternal/secret",
        "/api/v1/echo/%252e%252e/internal",
        "/api/v1/echo//internal/secret",
        "/api/v1/echo/a%5c..%5cinternal",
        "/api/v1/echo/a%00b",
    ],
)
async def test_path_traversal_and_encoded_separators_are_refused(
    gw: GatewayUnderTest, path: str
) -> None:
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    status_line = data.split(b"\r\n", 1)[0]
    assert b" 400 " in status_line or b" 404 " in status_line, data[:300]
    assert gw.upstreams["a"].requests + gw.upstreams["b"].requests == 0


async def test_internal_paths_are_never_routed(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    resp = await client.get(gw.url + "/internal/secret")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"


async def test_conflicting_content_length_and_transfer_encoding_is_refused(
    gw: GatewayUnderTest,
) -> None:
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"GET /internal/secret HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert not data or data.startswith(b"HTTP/1.1 400")
    assert gw.upstreams["a"].requests + gw.upstreams["b"].requests == 0


async def test_chunked_request_body_streams_through(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    async def body():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"x" * 1000

    resp = await client.post(gw.url + "/api/v1/echo/upload", content=body())
    assert resp.status_code == 200
    assert resp.json()["received"] == 10_000


async def test_expect_100_continue_is_answered(gw: GatewayUnderTest) -> None:
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /api/v1/echo/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim.startswith(b"HTTP/1.1 100")
    writer.write(b"hello")
    await writer.drain()
    rest = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert rest.startswith(b"HTTP/1.1 200")
    assert b'"received":5' in rest


async def test_pipelined_requests_are_answered_in_order(gw: GatewayUnderTest) -> None:
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /api/v1/echo/one HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /api/v1/echo/two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert data.count(b"HTTP/1.1 200") == 2
    assert data.index(b'"/api/v1/echo/one"') < data.index(b'"/api/v1/echo/two"')


async def test_body_over_route_limit_is_413(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    resp = await client.post(gw.url + "/api/v1/echo/upload", content=b"x" * 70_000)
    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/problem+json"

    async def body():  # type: ignore[no-untyped-def]
        for _ in range(70):
            yield b"x" * 1000

    streamed = await client.post(gw.url + "/api/v1/echo/upload", content=body())
    assert streamed.status_code == 413


async def test_response_body_streams_without_buffering(gw: GatewayUnderTest) -> None:
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        async with session.get(gw.url + "/api/v1/echo/stream") as resp:
            first = await resp.content.readline()
            first_at = time.monotonic() - started
            rest = await resp.read()
    assert first == b"chunk-0\n"
    assert first_at < 0.5  # the whole body takes about 1 s to produce
    assert rest.count(b"chunk-") == 4


async def test_websocket_echo_through_the_gateway(gw: GatewayUnderTest) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(gw.url.replace("http", "ws") + "/api/v1/echo/ws") as ws:
            for word in ("hello", "edge"):
                await ws.send_str(word)
                msg = await asyncio.wait_for(ws.receive(), 5)
                assert msg.data.endswith(":" + word)


async def test_non_public_route_needs_authentication(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    resp = await client.get(gw.url + "/api/v1/private/x")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"


async def test_idempotent_request_is_retried_on_another_instance_when_one_is_down(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    # Point instance "b" at a closed port without waiting for health checks to notice.
    pool = gw.gateway.upstreams.pool("echo", None)
    assert pool is not None
    b = next(i for i in pool.instances if i.url.endswith(str(gw.ports["b"])))
    object.__setattr__(b.spec, "url", "http://127.0.0.1:9")
    results = [await client.get(gw.url + "/api/v1/echo/x") for _ in range(6)]
    assert {r.status_code for r in results} == {200}
    assert {r.json()["upstream"] for r in results} == {"a"}


async def test_post_to_hung_instance_times_out_with_504_and_is_not_resent(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    gw.upstreams["a"].hang = True
    started = time.monotonic()
    statuses = []
    for i in range(4):
        resp = await client.post(gw.url + "/api/v1/echo/x", json={}, headers={"x-test-id": str(i)})
        statuses.append(resp.status_code)
    elapsed = time.monotonic() - started
    gw.upstreams["a"].hang = False
    await asyncio.sleep(0.1)
    # Round robin sends half the POSTs to the hung instance: those answer 504 ...
    assert 504 in statuses
    assert elapsed < 4 * 1.5 + 1
    # ... and no POST reached an upstream twice.
    posts = gw.upstreams["a"].posts + gw.upstreams["b"].posts
    assert len(posts) == len(set(posts))


async def test_get_to_hung_instance_is_retried_and_instance_ejected_then_returns(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    gw.upstreams["a"].hang = True
    results = [await client.get(gw.url + "/api/v1/echo/x") for _ in range(4)]
    assert {r.status_code for r in results} == {200}
    assert {r.json()["upstream"] for r in results} == {"b"}

    async def state() -> tuple[str, str]:
        inst = await gw.instance("a")
        return inst["health"], inst["circuit"]

    deadline = time.monotonic() + 3
    while await state() != ("down", "open") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    health, circuit = await state()
    assert health == "down"
    gw.upstreams["a"].hang = False
    deadline = time.monotonic() + 3
    while (await state())[0] != "up" and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await state() == ("up", "closed")
    served = {(await client.get(gw.url + "/api/v1/echo/x")).json()["upstream"] for _ in range(4)}
    assert served == {"a", "b"}
    assert circuit in ("open", "closed")


async def test_upstream_503_with_retry_after_keeps_the_breaker_closed_so_recovery_is_at_once(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    """A service whose database is away answers 503 + Retry-After itself: every instance
    would, so the breakers stay closed and the first request after the return is served."""
    for state in gw.upstreams.values():
        state.status, state.retry_after = 503, "1"
    answers = [(await client.post(gw.url + "/api/v1/echo/x")).status_code for _ in range(8)]
    assert answers == [503] * 8
    assert {(await gw.instance(n))["circuit"] for n in ("a", "b")} == {"closed"}
    for state in gw.upstreams.values():
        state.status, state.retry_after = 200, None
    assert (await client.post(gw.url + "/api/v1/echo/x")).status_code == 200

    # Without Retry-After a 503 is the instance failing: its breaker opens.
    for state in gw.upstreams.values():
        state.status = 503
    for _ in range(8):
        await client.post(gw.url + "/api/v1/echo/x")
    assert "open" in {(await gw.instance(n))["circuit"] for n in ("a", "b")}


async def test_no_healthy_instance_is_503_with_retry_after(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    for state in gw.upstreams.values():
        state.fail_health = True
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if all(
            i["health"] == "down" for p in (await gw.cluster())["services"] for i in p["instances"]
        ):
            break
        await asyncio.sleep(0.1)
    resp = await client.get(gw.url + "/api/v1/echo/x")
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "1"
    assert resp.headers["content-type"] == "application/problem+json"


async def test_route_table_hot_reload_without_dropping_in_flight(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    # A new, more specific route that needs a token: it shows as 401 once it is live.
    assert (await client.get(gw.url + "/api/v1/echo/locked/x")).status_code == 200
    in_flight = asyncio.create_task(client.get(gw.url + "/api/v1/echo/slow?s=4"))
    await asyncio.sleep(0.1)
    text = gw.routes_path.read_text() + (
        '\n[[routes]]\nprefix = "/api/v1/echo/locked"\nservice = "echo"\naccess = "authenticated"\n'
    )
    gw.routes_path.write_text(text)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if (await client.get(gw.url + "/api/v1/echo/locked/x")).status_code == 401:
            break
        await asyncio.sleep(0.1)
    assert (await client.get(gw.url + "/api/v1/echo/locked/x")).status_code == 401
    assert not in_flight.done(), "the slow request ended before the new table was live"
    assert (await in_flight).status_code == 200


async def test_invalid_route_table_is_rejected_and_old_one_kept(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    gw.routes_path.write_text('[[routes]]\nprefix = "/api/v1/echo"\nservice = "echo"\n')
    await asyncio.sleep(1.2)
    assert (await client.get(gw.url + "/api/v1/echo/x")).status_code == 200


async def test_weighted_round_robin_splits_by_weight(tmp_path: Path) -> None:
    async for g in start_gateway(tmp_path, {"a": 3, "b": 1}, "weighted_round_robin"):
        async with httpx.AsyncClient() as client:
            counts = {"a": 0, "b": 0}
            for _ in range(400):
                resp = await client.get(g.url + "/api/v1/echo/x")
                counts[resp.headers["x-upstream"]] += 1
        assert counts == {"a": 300, "b": 100}


async def test_authenticated_request_reaches_the_service_signed_without_the_token(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    """The hot path: the first call verifies the token, later ones are known callers."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from jwt.algorithms import OKPAlgorithm

    from edgelib.identity import Identity
    from edgelib.jwt import JwksCache, TokenVerifier
    from edgelib.settings import DEV_SERVICE_SECRET
    from edgelib.signing import ServiceSigner
    from gateway_api.security.authn import Authenticator
    from gateway_api.security.sessions import RevokedSessions

    key = Ed25519PrivateKey.generate()
    jwk = {**OKPAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1", "alg": "EdDSA"}

    async def jwks() -> dict[str, object]:
        return {"keys": [jwk]}

    async def feed(since: float) -> dict[str, object]:
        return {"now": time.time(), "revocations": []}

    verifier = TokenVerifier(
        JwksCache(jwks, algorithms=["EdDSA"]),
        issuer="edge-auth",
        audience="edge",
        algorithms=["EdDSA"],
    )
    await verifier.keys.refresh()
    authn = Authenticator(verifier, RevokedSessions(feed, poll_interval=60))
    await authn.revoked.poll()  # loaded once: authenticated routes are open
    gw.gateway.security.authn = authn
    now = int(time.time())
    claims = {
        "iss": "edge-auth", "aud": "edge", "sub": "u-1", "preferred_username": "ann",
        "region": "east", "sid": "s-1", "client_type": "web", "jti": "j1", "iat": now,
        "exp": now + 300,
    }  # fmt: skip
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt"})
    secret = DEV_SERVICE_SECRET
    services = ServiceSigner("echo", secret)  # the route's service: the destination
    for attempt in ("first (verified)", "second (known caller)"):
        resp = await client.get(
            gw.url + "/api/v1/private/x?a=1", headers={"authorization": f"Bearer {token}"}
        )
        assert resp.status_code == 200, attempt
        received = dict(resp.json()["headers"])
        assert "authorization" not in received, attempt
        caller = services.verify(
            "GET", "/api/v1/private/x?a=1", received, None, require_body_digest=False
        )
        assert caller == "gateway-api", attempt
        identity = Identity.decode(received["x-edge-identity"])
        assert (identity.user_id, identity.region, identity.session_id) == ("u-1", "east", "s-1")
    authn.revoked.add("s-1", time.time() + 300)
    resp = await client.get(
        gw.url + "/api/v1/private/x", headers={"authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 401
    assert resp.json()["type"].endswith("session-revoked")


async def test_upstream_dying_between_head_and_body_is_retried_not_truncated(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    gw.upstreams["a"].truncate = True
    for _ in range(4):  # round robin: half of the first attempts go to the dying one
        resp = await client.get(gw.url + "/api/v1/echo/x")
        assert resp.status_code == 200
        assert resp.json()["upstream"] == "b"
    assert gw.upstreams["a"].requests >= 1
    # A POST is not resent: its client gets a clean 502, not half an answer.
    gw.upstreams["b"].truncate = True
    resp = await client.post(gw.url + "/api/v1/echo/x", content=b"{}")
    assert resp.status_code == 502
    assert resp.headers["content-type"] == "application/problem+json"
