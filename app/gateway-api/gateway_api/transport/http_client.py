"""The forwarding core's HTTP/1.1 client: keep-alive connection pools per upstream.

Built on asyncio and httptools (llhttp) because the general-purpose clients cap the
gateway's rate (see doc/decisions.md). It does only what a reverse proxy needs:

- one request at a time per connection, connections reused while the upstream keeps
  them alive and dropped after ``idle_timeout`` (below the services' own keep-alive
  timeout, so the gateway never writes into a connection the upstream is closing);
- bodies stream both ways with back-pressure (reading from the upstream pauses while
  the client is slow);
- strict response parsing: llhttp's, plus a refusal of conflicting framing
  (``Content-Length`` with ``Transfer-Encoding``, or two different lengths);
- ``101 Switching Protocols`` hands the raw connection over (WebSocket tunnels); a 101
  to a request that asked for no upgrade is a broken answer (502);
- bytes from an upstream on a connection idle in the pool (nothing was asked) discard
  that connection: they could only be read as the answer to the next request.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Callable
from typing import Any, Final

import httptools
from mypy_extensions import mypyc_attr

#: Pause reading from an upstream while this many body bytes wait for the client.
HIGH_WATER: Final = 256 * 1024
MAX_HEADER_BYTES: Final = 64 * 1024
#: How often a pool checks its waiting connections' deadlines (timeouts fire this late at most).
SWEEP_SECONDS: Final = 0.05


@mypyc_attr(native_class=False)
class UpstreamError(Exception):
    """The upstream connection failed or answered something that is not valid HTTP/1.1."""


@mypyc_attr(native_class=False)
class ConnectFailed(UpstreamError):
    """No connection could be made: nothing was sent."""


@mypyc_attr(native_class=False)
class UpstreamTimeout(UpstreamError, TimeoutError):
    """The upstream did not answer (or send more of its body) in time."""


class Response:
    """An upstream's response head; the body is read with :meth:`UpstreamConnection.chunk`."""

    __slots__ = ("chunked", "headers", "length", "status", "upgraded")

    def __init__(
        self, status: int, headers: list[tuple[bytes, bytes]], length: int | None, chunked: bool
    ) -> None:
        self.status = status
        self.headers = headers
        self.length = length
        self.chunked = chunked
        self.upgraded = False


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to an upstream, driven by :class:`OriginPool`."""

    def __init__(self, pool: OriginPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._fresh_parser = False
        self._head_request = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._response: Response | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused_reading = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._received_any = False
        self._keep_alive = False
        self._upgrade_request = False
        #: Idle in its pool: no request is out, so no byte may arrive.
        self.in_pool = False
        self.deadline = 0.0
        #: After a 101, raw bytes from the upstream go here instead of the parser.
        self.tunnel_sink: Callable[[bytes], None] | None = None
        self.tunnel_closed: Callable[[], None] | None = None
        #: After a 101, told when writes to the upstream back up (True) and drain.
        self.tunnel_flow: Callable[[bool], None] | None = None
        #: Reads in tunnel mode (a tunnel's idle timeout looks for them).
        self.reads = 0
        self.leftover = b""

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - not a TCP socket
                pass

    def data_received(self, data: bytes) -> None:
        if self.in_pool:
            # Unasked-for bytes (a stray or smuggled answer): never reuse this connection.
            self.in_pool = False
            self.abort()
            return
        if self.tunnel_sink is not None:
            self.reads += 1
            self.tunnel_sink(data)
            return
        self._received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0]
            self.leftover = data[offset:]
            if self._response is not None and self._response.status == 101:
                self._response.upgraded = True
                self._done = True
                self._wake()
            else:
                self._fail(UpstreamError("unexpected upgrade from upstream"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"invalid response from upstream: {exc}"))

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.tunnel_closed is not None:
            self.tunnel_closed()
            return
        if self._response is not None and not self._done and self._until_close():
            # A body delimited by the connection's end is complete now.
            self._done = True
            self._wake()
            return
        if not self._done:
            self._fail(UpstreamError("upstream closed the connection"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.tunnel_flow is not None:
            self.tunnel_flow(True)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        if self.tunnel_flow is not None:
            self.tunnel_flow(False)

    # -- httptools callbacks --------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []
        self._header_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._response is not None:
            return  # trailers: not forwarded
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise UpstreamError("upstream response headers too large")
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self._headers = []  # interim response (100 Continue, 103): skip it
            return
        if status == 101 and not self._upgrade_request:
            raise UpstreamError("101 Switching Protocols to a request that asked for none")
        length: int | None = None
        chunked = False
        for name, value in self._headers:
            if name == b"content-length":
                if length is not None and int(value) != length:
                    raise UpstreamError("conflicting Content-Length in upstream response")
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = True
        if chunked and length is not None:
            raise UpstreamError("upstream response has both Content-Length and Transfer-Encoding")
        self._response = Response(status, self._headers, length, chunked)
        # Read now: llhttp resets its flags once the message is complete.
        self._keep_alive = self.parser.should_keep_alive()
        if self._head_request or status in (204, 304):
            self._done = True
            self._fresh_parser = self._head_request
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._done:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused_reading and self.transport:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._response is None:
            return  # the end of an interim response
        self._done = True
        self._wake()

    # -- used by the forwarder ------------------------------------------------------

    def _resume_reading(self) -> None:
        self._paused_reading = False
        if self.transport is not None:
            self.transport.resume_reading()

    def _until_close(self) -> bool:
        r = self._response
        return r is not None and r.length is None and not r.chunked and not self._head_request

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._wake()
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def start(self, head: bytes, *, head_request: bool, upgrade: bool = False) -> None:
        """Begin a request: write its head (the body follows with :meth:`write`)."""
        if self._fresh_parser:
            self.parser = httptools.HttpResponseParser(self)
            self._fresh_parser = False
        self._head_request = head_request
        self._upgrade_request = upgrade
        self._response = None
        self._done = False
        self._error = None
        self._chunks.clear()
        self._buffered = 0
        self._received_any = False
        assert self.transport is not None
        self.transport.write(head)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self._write_paused and not self.closed:
            self._drain = self.loop.create_future()
            await self._drain

    @property
    def done(self) -> bool:
        """The whole response has arrived (or the exchange failed)."""
        return self._done

    @property
    def body_ready(self) -> bool:
        """Some of the body (or its end) is here already: no need to wait for it."""
        return bool(self._chunks) or self._done

    @property
    def received_any(self) -> bool:
        return self._received_any

    async def _wait(self, seconds: float) -> None:
        # No timer per wait (about 1.6 µs each with uvloop): the pool sweeps the
        # deadlines of its waiting connections every SWEEP_SECONDS instead. Hence the
        # seconds a wait may take as an argument, not asyncio.timeout() around the call.
        waiter = self._waiter = self.loop.create_future()
        self.deadline = self.loop.time() + seconds
        pool = self.pool
        pool.waiting.add(self)
        if pool.sweeper is None:
            pool.sweeper = self.loop.call_later(SWEEP_SECONDS, pool.sweep)
        try:
            await waiter
        finally:
            self._waiter = None
            pool.waiting.discard(self)

    def take_rest(self) -> bytes | None:
        """The whole rest of the body when all of it is here already, else None."""
        if not self._done or self._error is not None:
            return None
        chunks = self._chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused_reading:
            # The last read went past the high-water mark and completed the body: the
            # connection goes back to its pool, where the next answer must be read.
            self._resume_reading()
        return data

    async def response(self, seconds: float) -> Response:
        """The response head, skipping interim (1xx) responses."""
        while self._response is None:
            if self._error is not None:
                raise self._error
            if self.closed:
                raise UpstreamError("upstream closed the connection")
            await self._wait(seconds)
        return self._response

    async def complete(self, seconds: float) -> None:
        """Wait until the whole response has arrived (it stays buffered for :meth:`chunk`)."""
        while not self._done:
            if self._error is not None:
                raise self._error
            if self.closed:
                raise UpstreamError("upstream closed the connection")
            if seconds <= 0:
                raise UpstreamTimeout("no time left for the upstream's body")
            await self._wait(seconds)
        if self._error is not None:
            raise self._error

    async def chunk(self, seconds: float) -> bytes:
        """The next piece of the body; ``b""`` once it is complete."""
        while True:
            if self._chunks:
                data = self._chunks.popleft()
                self._buffered -= len(data)
                if self._paused_reading and self._buffered < HIGH_WATER // 2:
                    self._resume_reading()
                return data
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            if self.closed:
                raise UpstreamError("upstream closed the connection")
            await self._wait(seconds)

    @property
    def reusable(self) -> bool:
        """True when the exchange ended cleanly and the upstream keeps the connection."""
        return (
            self._done
            and self._error is None
            and not self.closed
            and not self._until_close()
            and self._keep_alive
            and (self._response is None or not self._response.upgraded)
        )


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeout("upstream did not answer in time"))


class OriginPool:
    """Idle keep-alive connections to one ``host:port``, most recently used first."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        loop: asyncio.AbstractEventLoop,
        idle_timeout: float,
        max_idle: int,
    ) -> None:
        self.host = host
        self.port = port
        self.loop = loop
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self.idle: list[UpstreamConnection] = []
        self.opened = 0
        #: Connections waiting for the upstream, and the timer that checks their deadlines.
        self.waiting: set[UpstreamConnection] = set()
        self.sweeper: asyncio.TimerHandle | None = None

    def sweep(self) -> None:
        """Fail the waits whose deadline has passed; run again while anyone waits."""
        now = self.loop.time()
        for conn in [c for c in self.waiting if c.deadline <= now]:
            self.waiting.discard(conn)
            waiter = conn._waiter
            if waiter is not None:
                _expire(waiter)
        self.sweeper = self.loop.call_later(SWEEP_SECONDS, self.sweep) if self.waiting else None

    def take(self) -> UpstreamConnection | None:
        """An idle kept-alive connection, if there is one (no await on the common path)."""
        now = self.loop.time()
        idle = self.idle
        while idle:
            conn = idle.pop()
            conn.in_pool = False
            if not conn.closed and now - conn.idle_since < self.idle_timeout:
                return conn
            conn.abort()
        return None

    async def acquire(self, connect_timeout: float) -> tuple[UpstreamConnection, bool]:
        """A connection and whether it was reused from the pool."""
        conn = self.take()
        if conn is not None:
            return conn, True
        return await self.connect(connect_timeout), False

    async def connect(self, connect_timeout: float) -> UpstreamConnection:
        """A new connection, not taken from the pool (a tunnel, or the pool is empty)."""
        try:
            async with asyncio.timeout(connect_timeout):
                _, protocol = await self.loop.create_connection(
                    lambda: UpstreamConnection(self), self.host, self.port
                )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"connect to {self.host}:{self.port}: {exc!r}") from exc
        self.opened += 1
        return protocol

    def release(self, conn: UpstreamConnection) -> None:
        """Keep ``conn`` for the next request if it can carry one, else close it."""
        if conn.reusable and len(self.idle) < self.max_idle:
            conn.idle_since = self.loop.time()
            conn.in_pool = True
            self.idle.append(conn)
        else:
            conn.abort()

    def forget(self, conn: UpstreamConnection) -> None:
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def close(self) -> None:
        for conn in self.idle:
            conn.abort()
        self.idle.clear()
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None


class HttpClient:
    """Origin pools by ``(host, port)``; made in the gateway's start, closed in its stop."""

    def __init__(self, *, idle_timeout: float = 4.0, max_idle: int = 512) -> None:
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self.pools: dict[str, OriginPool] = {}

    def pool(self, origin: str) -> OriginPool:
        """The pool for ``http://host:port`` (no path)."""
        pool = self.pools.get(origin)
        if pool is None:
            host, _, port = origin.removeprefix("http://").rpartition(":")
            pool = self.pools[origin] = OriginPool(
                host.strip("[]"),
                int(port or 80),
                loop=asyncio.get_running_loop(),
                idle_timeout=self.idle_timeout,
                max_idle=self.max_idle,
            )
        return pool

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            origin: {"idle": len(p.idle), "opened": p.opened} for origin, p in self.pools.items()
        }


def request_head(method: str, target: bytes, host: bytes, headers: bytes) -> bytes:
    """The start of an upstream request, up to (not including) its framing headers."""
    return method.encode() + b" " + target + b" HTTP/1.1\r\nhost: " + host + b"\r\n" + headers
