"""Hostile clients against a running gateway, over raw sockets: every bound holds.

The gateway runs in-process with its real listeners, with its limits tightened so
that each shows within a second or two: slow heads and bodies (408), endless or
numerous header fields (431), clients that do not read (dropped, the upstream
released), the connection cap, and WebSocket tunnels that idle or outlive their
lifetime. The memory bounds under floods are in ``test_hostile_load.py``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from tests.gateway.conftest import GatewayUnderTest, start_gateway

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
SEND_TIMEOUT = 1.0
#: The sweeper checks once a second: a timeout fires up to this late.
SWEEP = 1.0
MAX_CONNECTIONS = 40
WS_HANDSHAKE = (
    b"GET /api/v1/echo/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
    b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


@pytest.fixture
async def tight(tmp_path) -> AsyncIterator[GatewayUnderTest]:  # type: ignore[no-untyped-def]
    async for g in start_gateway(
        tmp_path,
        {"a": 1},
        client_header_timeout=HEADER_TIMEOUT,
        client_body_timeout=BODY_TIMEOUT,
        send_timeout=SEND_TIMEOUT,
        max_connections=MAX_CONNECTIONS,
        websocket_idle_timeout=1.0,
        websocket_max_lifetime=3.0,
    ):
        yield g


async def connect(
    gw: GatewayUnderTest, *, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = gw.url.removeprefix("http://").split(":")
    if rcvbuf is None:
        return await asyncio.open_connection(host, int(port))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    return await asyncio.open_connection(sock=sock, limit=1024)


async def read_all(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything until the gateway closes (a reset counts as the end)."""
    chunks = []
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def problem(data: bytes) -> dict[str, object]:
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), head
    doc: dict[str, object] = orjson.loads(body)
    return doc


async def test_a_slow_request_head_gets_408_within_the_header_timeout(
    tight: GatewayUnderTest,
) -> None:
    reader, writer = await connect(tight)
    writer.write(b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()

    async def trickle() -> None:  # a byte at a time: progress, but never a whole head
        try:
            for _ in range(50):
                writer.write(b"a")
                await writer.drain()
                await asyncio.sleep(0.2)
        except (ConnectionError, RuntimeError):
            return

    task = asyncio.create_task(trickle())
    data = await read_all(reader, 6)
    elapsed = time.monotonic() - started
    task.cancel()
    writer.close()
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert str(problem(data)["type"]).endswith("/request-timeout")
    assert HEADER_TIMEOUT <= elapsed < HEADER_TIMEOUT + SWEEP + 0.5, elapsed
    assert tight.upstreams["a"].requests == 0


async def test_a_stalled_request_body_gets_408_within_the_body_timeout_and_frees_the_upstream(
    tight: GatewayUnderTest,
) -> None:
    reader, writer = await connect(tight)
    writer.write(
        b"POST /api/v1/echo/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"b" * 100
    )
    await writer.drain()
    started = time.monotonic()
    data = await read_all(reader, 6)
    elapsed = time.monotonic() - started
    writer.close()
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert "body" in str(problem(data)["detail"])
    assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT + SWEEP + 0.5, elapsed
    assert (await tight.instance("a"))["in_flight"] == 0


async def test_an_endless_header_line_gets_431_before_64_kib_are_read(
    tight: GatewayUnderTest,
) -> None:
    reader, writer = await connect(tight)
    writer.write(b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    sent = 0
    answer = b""
    while sent < 256 * 1024:
        try:
            writer.write(b"a" * 1024)
            await writer.drain()
        except ConnectionError:
            break
        sent += 1024
        try:  # (quick looks: the whole run must fit in the header timeout)
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.003)
            break
        except TimeoutError:
            continue
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431"), (sent, answer[:200])
    assert sent <= 64 * 1024, sent


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(101))
        + b"\r\n",
        b"POST /api/v1/echo/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n" + b"".join(b"X-T%d: v\r\n" % i for i in range(101)) + b"\r\n",
    ],
    ids=["101 header fields", "101 trailer fields"],
)
async def test_too_many_header_or_trailer_fields_get_431(
    tight: GatewayUnderTest, raw: bytes
) -> None:
    reader, writer = await connect(tight)
    writer.write(raw)
    data = await read_all(reader, 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 431"), data[:200]
    assert str(problem(data)["type"]).endswith("/headers-too-large")


async def test_endless_trailers_get_431(tight: GatewayUnderTest) -> None:
    reader, writer = await connect(tight)
    writer.write(
        b"POST /api/v1/echo/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nX-Endless: "
    )
    sent = 0
    data = b""
    while sent < 512 * 1024 and not data:
        try:
            writer.write(b"t" * 4096)
            await writer.drain()
        except ConnectionError:
            break
        sent += 4096
        try:
            data = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.003)
        except TimeoutError:
            continue
    writer.close()
    assert data.startswith(b"HTTP/1.1 431"), (sent, data[:200])
    assert sent <= 72 * 1024, sent


async def test_a_client_that_does_not_read_is_dropped_and_its_upstream_released(
    tight: GatewayUnderTest,
) -> None:
    state = tight.upstreams["a"]
    _reader, writer = await connect(tight, rcvbuf=4096)
    writer.write(b"GET /api/v1/echo/big?mb=512 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    deadline = time.monotonic() + 5
    while state.streaming == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert state.streaming == 1
    started = time.monotonic()
    # The client reads nothing (its reader pauses at 2 KiB); the gateway's writes back up.
    while (state.streaming or (await tight.instance("a"))["in_flight"]) and (
        time.monotonic() - started < 10
    ):
        await asyncio.sleep(0.1)
    released = time.monotonic() - started
    assert state.streaming == 0
    assert (await tight.instance("a"))["in_flight"] == 0
    assert released < SEND_TIMEOUT + SWEEP + 3, released
    assert tight.server is not None
    assert all(not c.current for c in tight.server.connections)
    writer.close()


async def test_pipelined_requests_are_not_read_while_answers_wait_unread(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """Back-pressure: the gateway takes a few requests ahead, then stops reading."""
    async for gw in start_gateway(tmp_path, {"a": 1}):  # default (60 s) send timeout
        _reader, writer = await connect(gw, rcvbuf=4096)
        request = b"GET /api/v1/echo/big?mb=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(request * 200)  # 200 MiB of answers asked for at once
        await asyncio.sleep(2.0)
        assert gw.server is not None
        (conn,) = [c for c in gw.server.connections if c.queue]
        assert len(conn.queue) <= 4 + 1 + 4096 // len(request)
        served = (await gw.instance("a"))["requests"]
        assert served < 10, served  # the answers wait: no more of them are produced
        writer.close()


async def test_at_the_connection_cap_idle_connections_make_room_and_busy_ones_do_not(
    tight: GatewayUnderTest,
) -> None:
    idle = [await connect(tight) for _ in range(MAX_CONNECTIONS)]
    await asyncio.sleep(0.2)
    reader, writer = await connect(tight)
    writer.write(b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await read_all(reader, 5)).startswith(b"HTTP/1.1 200")
    writer.close()
    closed = 0
    for r, _ in idle:
        try:
            closed += await asyncio.wait_for(r.read(), 0.05) == b""
        except TimeoutError:
            pass
    assert 1 <= closed <= 32  # the longest idle ones, one batch at most
    for _, w in idle:
        w.close()
    await asyncio.sleep(0.3)

    # Every connection in the middle of a request head: none may be closed for another.
    busy = [await connect(tight) for _ in range(MAX_CONNECTIONS)]
    for _, w in busy:
        w.write(b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\n")
    await asyncio.sleep(0.2)
    reader, writer = await connect(tight)
    writer.write(b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await read_all(reader, 0.5) == b""  # refused: nothing idle to close for it
    writer.close()
    assert tight.server is not None
    assert tight.server.refused >= 1
    answers = [await read_all(r, 5) for r, _ in busy]  # each still gets its own answer
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers)
    for _, w in busy:
        w.close()


async def open_tunnel(gw: GatewayUnderTest) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await connect(gw)
    writer.write(WS_HANDSHAKE)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def frame(text: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(text))
    return bytes([0x81, 0x80 | len(text)]) + mask + masked


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, text: bytes) -> bytes:
    writer.write(frame(text))
    await writer.drain()
    head = await asyncio.wait_for(reader.readexactly(2), 5)
    return await asyncio.wait_for(reader.readexactly(head[1] & 0x7F), 5)


async def test_an_idle_websocket_tunnel_is_closed_at_its_idle_timeout(
    tight: GatewayUnderTest,
) -> None:
    reader, writer = await open_tunnel(tight)
    assert await echo(reader, writer, b"hi") == b"a:hi"
    started = time.monotonic()
    assert await read_all(reader, 5) == b""
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.6, elapsed
    writer.close()


async def test_a_busy_websocket_tunnel_is_closed_at_its_lifetime(
    tight: GatewayUnderTest,
) -> None:
    reader, writer = await open_tunnel(tight)
    started = time.monotonic()
    try:
        while time.monotonic() - started < 10:
            assert await echo(reader, writer, b"tick") == b"a:tick"
            await asyncio.sleep(0.3)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    elapsed = time.monotonic() - started
    assert 2.9 <= elapsed < 3.8, elapsed
    writer.close()
