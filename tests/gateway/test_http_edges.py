"""HTTP/1.1 edge cases on the gateway's own server and forwarding core, over raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from gateway_api.transport.http_client import HttpClient, UpstreamError
from gateway_api.transport.server import HttpServer
from tests.gateway.conftest import GatewayUnderTest
from tests.worker import free_port


async def exchange(gw: GatewayUnderTest, raw: bytes, timeout: float = 5) -> bytes:
    """Send ``raw`` on a new connection; everything the gateway answers until it closes."""
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def upstream_requests(gw: GatewayUnderTest) -> int:
    return sum(state.requests for state in gw.upstreams.values())


@pytest.mark.parametrize(
    "head",
    [
        # CL.TE and TE.CL: both framings present.
        b"POST /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 4\r\n\r\n0\r\n\r\n",
        # Two different lengths.
        b"POST /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Content-Length: 40\r\n\r\nabcd",
        # Obfuscated Transfer-Encoding values.
        b"POST /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n"
        b"Content-Length: 4\r\n\r\nabcd",
        b"POST /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        # A bare LF inside a header line, and a header without a colon.
        b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nX-A: 1\nX-B: 2\r\n\r\n",
        b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nno-colon-here\r\n\r\n",
        # A chunk size that is not hex.
        b"POST /api/v1/echo/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nabcd\r\n0\r\n\r\n",
    ],
)
async def test_ambiguous_or_malformed_framing_is_refused_and_nothing_reaches_upstream(
    gw: GatewayUnderTest, head: bytes
) -> None:
    smuggled = b"GET /api/v1/echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    data = await exchange(gw, head + smuggled)
    assert data.startswith(b"HTTP/1.1 400"), data[:200]
    assert data.count(b"HTTP/1.1 ") == 1  # the connection closes after the refusal
    assert b"application/problem+json" in data
    assert upstream_requests(gw) == 0


async def test_chunked_request_with_trailers_is_forwarded_with_its_body(
    gw: GatewayUnderTest,
) -> None:
    data = await exchange(
        gw,
        b"POST /api/v1/echo/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 200")
    assert b'"received":11' in data


async def test_unknown_length_response_reaches_http11_client_chunked_and_http10_until_close(
    gw: GatewayUnderTest,
) -> None:
    data = await exchange(
        gw, b"GET /api/v1/echo/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body.endswith(b"0\r\n\r\n")
    assert b"chunk-4" in body
    old = await exchange(gw, b"GET /api/v1/echo/stream HTTP/1.0\r\nHost: x\r\n\r\n")
    head, _, body = old.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"".join(f"chunk-{i}\n".encode() for i in range(5))


async def test_expect_100_continue_is_not_sent_when_the_request_is_refused_first(
    gw: GatewayUnderTest,
) -> None:
    data = await exchange(
        gw,
        b"POST /api/v1/private/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 401")
    assert b"100 Continue" not in data


async def test_head_request_gets_headers_only_and_the_connection_stays_usable(
    gw: GatewayUnderTest,
) -> None:
    data = await exchange(
        gw,
        b"HEAD /api/v1/echo/x HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /api/v1/echo/after-head HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200")
    assert b"content-length:" in first.lower()
    assert rest.startswith(b"HTTP/1.1 200")  # no body bytes of the HEAD answer in between
    assert b"/api/v1/echo/after-head" in rest


async def test_many_pipelined_requests_with_bodies_are_answered_in_order(
    gw: GatewayUnderTest,
) -> None:
    requests = b"".join(
        b"POST /api/v1/echo/n%d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" % i
        for i in range(20)
    )
    data = await exchange(
        gw, requests + b"GET /api/v1/echo/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert data.count(b"HTTP/1.1 200") == 21
    positions = [data.index(b'"/api/v1/echo/n%d"' % i) for i in range(20)]
    assert positions == sorted(positions)
    assert data.rindex(b'"/api/v1/echo/last"') > positions[-1]


async def test_oversized_request_head_is_431(gw: GatewayUnderTest) -> None:
    data = await exchange(
        gw, b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    )
    assert data.startswith(b"HTTP/1.1 431")
    assert upstream_requests(gw) == 0


async def test_upgrade_other_than_websocket_is_refused(gw: GatewayUnderTest) -> None:
    data = await exchange(
        gw,
        b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 400")
    assert upstream_requests(gw) == 0


async def test_websocket_upgrade_needs_authentication_on_a_private_route(
    gw: GatewayUnderTest,
) -> None:
    data = await exchange(
        gw,
        b"GET /api/v1/private/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 401")
    assert b"connection: close" in data.lower()


async def test_websocket_upgrade_is_tunnelled_with_the_handshake_intact(
    gw: GatewayUnderTest,
) -> None:
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /api/v1/echo/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101")
    # RFC 6455's sample key gives this accept value: the upstream's answer passed untouched.
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    # A masked text frame "hi"; the echo comes back unmasked as "<upstream>:hi".
    mask = b"\x01\x02\x03\x04"
    writer.write(b"\x81\x82" + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"hi")))
    await writer.drain()
    frame = await asyncio.wait_for(reader.readexactly(2), 5)
    payload = await asyncio.wait_for(reader.readexactly(frame[1] & 0x7F), 5)
    assert frame[0] == 0x81
    assert payload.endswith(b":hi")
    writer.close()


async def test_client_disconnect_mid_request_is_logged_as_499_and_gateway_keeps_serving(
    gw: GatewayUnderTest,
) -> None:
    host, port = gw.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /api/v1/echo/slow?s=0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await asyncio.sleep(0.6)
    data = await exchange(
        gw, b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert data.startswith(b"HTTP/1.1 200")


# -- the forwarding core against misbehaving upstreams -----------------------------------


@contextlib.asynccontextmanager
async def raw_upstream(answer: bytes) -> AsyncIterator[int]:
    """A server that answers every request with ``answer`` verbatim."""

    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            await asyncio.sleep(0.2)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        await server.wait_closed()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
)
async def test_upstream_response_with_broken_framing_is_refused(answer: bytes) -> None:
    async with raw_upstream(answer) as port:
        client = HttpClient()
        conn, _ = await client.pool(f"http://127.0.0.1:{port}").acquire(1)
        conn.start(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", head_request=False)

        async def read_all() -> None:
            await conn.response(2)
            while await conn.chunk(2):
                pass

        with pytest.raises(UpstreamError):
            await read_all()
        client.close()


async def test_interim_1xx_from_upstream_is_skipped() -> None:
    answer = (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    async with raw_upstream(answer) as port:
        client = HttpClient()
        conn, _ = await client.pool(f"http://127.0.0.1:{port}").acquire(1)
        conn.start(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", head_request=False)
        resp = await conn.response(2)
        assert resp.status == 200
        assert await conn.chunk(2) == b"ok"
        conn.abort()
        client.close()


async def test_pooled_connection_is_reused_and_dropped_when_upstream_closes_it() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with raw_upstream(answer) as port:
        client = HttpClient()
        pool = client.pool(f"http://127.0.0.1:{port}")
        conn, reused = await pool.acquire(1)
        conn.start(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", head_request=False)
        await conn.response(2)
        assert await conn.chunk(2) == b"ok"
        assert await conn.chunk(2) == b""
        pool.release(conn)
        assert pool.idle == [conn]
        await asyncio.sleep(0.4)  # the raw upstream closes after 0.2 s
        assert pool.idle == []
        fresh, reused = await pool.acquire(1)
        assert reused is False
        fresh.abort()
        client.close()


async def test_server_stop_waits_for_requests_in_flight() -> None:
    async def slow(exchange):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.3)
        exchange.respond(200, [], b"done")

    server = HttpServer(slow, bad_request=lambda status, detail: ([], b""))
    port = free_port()
    await server.start("127.0.0.1", port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.05)
    await server.stop(grace=2)
    data = await asyncio.wait_for(reader.read(), 2)
    writer.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"done")
