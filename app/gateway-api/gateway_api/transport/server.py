"""The public listener's HTTP/1.1 server: asyncio protocol plus httptools (llhttp).

Not uvicorn: the gateway's request path is the product, and an ASGI server spends a
large share of a small request on building and dispatching messages (see
doc/decisions.md for the numbers). This server hands the proxy an exchange (its
:class:`HttpExchange`, the :class:`~gateway_api.transport.exchange.Exchange` contract)
with the request head as an ASGI-like ``scope`` and lets it stream the body and write
the answer. It keeps connections alive, answers pipelined requests in order, sends
``100 Continue`` when a body is first read, refuses malformed or ambiguous framing
(llhttp's strict mode) with 400, and hands ``Upgrade: websocket`` connections over as
raw byte streams.

Every client is presumed hostile, so everything a connection may hold or take is
bounded (:class:`ClientLimits`, nginx's and Envoy's defaults): the time to send a
request head (408) and between two reads of a body (408), the time a client may leave
our writes unread (the connection is dropped), the raw bytes of a request head counted
before the parser sees them (431; llhttp through httptools would otherwise accumulate
an endless header line), the number of header and trailer fields, the requests parsed
ahead of the one being answered, and the connections a worker holds. A connection
whose writes are backed up is not read until they drain.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

import httptools

from gateway_api.transport.exchange import BadRequest, ClientGone, Handler, TrustedPeers

logger = logging.getLogger("gateway.server")

#: Pause reading a client while this many body bytes wait for the proxy.
BODY_HIGH_WATER: Final = 256 * 1024
#: How long a connection closed before its request body ended drains that body.
LINGER_SECONDS: Final = 2.0
#: Bytes handed to the parser at a time outside a body, and inside one: between two
#: pieces the connection checks its limits (head size, requests parsed ahead), so a
#: large read of tiny pipelined requests is not all parsed at once.
HEAD_SLICE: Final = 4096
BODY_SLICE: Final = 64 * 1024
#: How an HTTP/2 connection with prior knowledge begins (RFC 9113 3.4).
H2_PREFACE_START: Final = b"PRI * HTTP/2.0"
#: Idle connections closed at once to make room when a worker is at its cap (nginx's 32).
EVICT_BATCH: Final = 32


class ClientLimits:
    """What one client connection may hold or take; defaults after nginx's and Envoy's."""

    __slots__ = (
        "body_timeout",
        "header_timeout",
        "max_connections",
        "max_header_bytes",
        "max_headers",
        "max_pipelined",
        "send_timeout",
    )

    def __init__(
        self,
        *,
        header_timeout: float = 60.0,
        body_timeout: float = 60.0,
        send_timeout: float = 60.0,
        max_header_bytes: int = 60 * 1024,
        max_headers: int = 100,
        max_pipelined: int = 4,
        max_connections: int = 4096,
    ) -> None:
        #: Seconds from a request head's first byte to its end (nginx client_header_timeout).
        self.header_timeout = header_timeout
        #: Seconds a request body may go without a byte (nginx client_body_timeout).
        self.body_timeout = body_timeout
        #: Seconds our writes may stay backed up by a client that does not read (send_timeout).
        self.send_timeout = send_timeout
        #: Raw bytes of a request head (Envoy's max_request_headers_kb, 60).
        self.max_header_bytes = max_header_bytes
        #: Header fields of a request, and trailer fields of its body (Envoy's 100).
        self.max_headers = max_headers
        #: Requests parsed ahead of the one being answered.
        self.max_pipelined = max_pipelined
        #: Client connections one worker holds (nginx's worker_connections).
        self.max_connections = max_connections


_REASONS: Final = {s.value: s.phrase.encode() for s in HTTPStatus}
_STATUS_LINES: Final[dict[int, bytes]] = {}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))
    return line


class HttpExchange:
    """One request on a client connection and the means to answer it (this server's
    :class:`~gateway_api.transport.exchange.Exchange`)."""

    __slots__ = (
        "_body",
        "_body_bytes",
        "_body_done",
        "_head",
        "chunked_response",
        "conn",
        "expect_continue",
        "has_body",
        "keep_alive",
        "response_done",
        "response_started",
        "scope",
        "upgrade",
    )

    def __init__(self, conn: ClientConnection, scope: dict[str, Any], keep_alive: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = False
        self.has_body = False
        self.upgrade: bytes | None = None
        self._body: collections.deque[bytes] = collections.deque()
        self._body_bytes = 0
        self._body_done = False
        self.response_started = False
        self.response_done = False
        self.chunked_response = False
        self._head = b""

    # -- the request body -----------------------------------------------------------

    async def receive(self) -> bytes:
        """The next piece of the request body; ``b""`` when it is complete."""
        conn = self.conn
        if self.expect_continue:
            self.expect_continue = False
            if not self.response_started and not conn.closed:
                conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while not self._body:
            if self._body_done:
                return b""
            if conn.closed or conn._bad is not None:
                # Gone, or the rest of the body is malformed: there is no more of it.
                raise ClientGone
            conn.resume_reading()
            await conn.wait_for_data()
        data = self._body.popleft()
        self._body_bytes -= len(data)
        return data

    def _feed(self, data: bytes) -> None:
        self._body.append(data)
        self._body_bytes += len(data)
        if self._body_bytes > BODY_HIGH_WATER:
            self.conn.pause_reading()

    @property
    def body_complete(self) -> bool:
        """The whole request body has arrived (read or not): the next request may follow."""
        return self._body_done

    # -- the response ---------------------------------------------------------------

    def start_response(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        *,
        length: int | None,
        body_follows: bool = True,
        flush: bool = True,
    ) -> None:
        """Write the status line and headers; framing headers are added here.

        With ``length`` None and a body to follow, HTTP/1.1 clients get a chunked body,
        HTTP/1.0 clients a body delimited by the connection's end. With ``flush``
        false the head waits for the first piece of the body (one write, one packet).
        """
        self.response_started = True
        if self.has_body and not self._body_done:
            # Answered before the whole body arrived: the connection cannot carry more.
            self.keep_alive = False
        parts = [status_line(status)]
        for name, value in headers:
            parts.append(name + b": " + value + b"\r\n")
        if length is not None:
            parts.append(b"content-length: %d\r\n" % length)
        elif body_follows:
            if self.scope["http_version"] == "1.1":
                self.chunked_response = True
                parts.append(b"transfer-encoding: chunked\r\n")
            else:
                self.keep_alive = False
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        self._head = b"".join(parts)
        if flush:
            self.flush()

    def flush(self) -> None:
        if self._head:
            self.conn.write(self._head)
            self._head = b""

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.chunked_response:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        if self._head:
            data = self._head + data
            self._head = b""
        self.conn.write(data)

    async def drain(self) -> None:
        await self.conn.drain()

    def end(self) -> None:
        if self.chunked_response:
            self.conn.write(self._head + b"0\r\n\r\n")
            self._head = b""
        else:
            self.flush()
        self.response_done = True

    def abort(self) -> None:
        """The response cannot be completed: drop the connection so the client knows."""
        self.keep_alive = False
        self.conn.abort()

    def respond(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, head: bool = False
    ) -> None:
        """A whole small response at once."""
        self.start_response(status, headers, length=len(body), body_follows=False, flush=False)
        self.conn.write(self._head if head else self._head + body)
        self._head = b""
        self.response_done = True


class ClientConnection(asyncio.Protocol):
    """One client connection: parses requests and runs the handler on them in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.limits = server.limits
        self.loop = server.loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.closed = False
        self.client: tuple[str, int] | None = None
        self.server_addr: tuple[str, int] | None = None
        self.queue: collections.deque[HttpExchange] = collections.deque()
        self.current: HttpExchange | None = None
        self._parsing: HttpExchange | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._write_paused = False
        self._write_paused_at = 0.0
        self._drain: asyncio.Future[None] | None = None
        #: When the connection last became idle (None while a request is in hand).
        self.idle_since: float | None = None
        self._bad: tuple[int, str] | None = None
        #: Why the parser was stopped from a callback (read back in _feed).
        self._head_error: tuple[int, str] | None = None
        #: A request head has begun and not ended: since when, and its raw bytes so far.
        self._head_open = False
        self._head_since = 0.0
        self._head_bytes = 0
        #: Raw bytes of the body being parsed beyond its content (chunk framing,
        #: trailers), the content so far, and its trailer fields.
        self._framing = 0
        self._body_total = 0
        self._trailers = 0
        #: Bytes read but not parsed yet: held back while enough requests are queued.
        self._stash = b""
        #: Reading stays paused until its owner lifts this (an upgrade being set up).
        self._parked = False
        #: Reads so far (the progress the sweeper looks for), and what it saw last.
        self.reads = 0
        self._seen_reads = 0
        self._progress_at = 0.0
        self._trusted_peer = False
        self._lingering = False
        #: After an upgrade, raw client bytes go here instead of the parser.
        self.tunnel_sink: Callable[[bytes], None] | None = None
        self.tunnel_closed: Callable[[], None] | None = None
        #: After an upgrade, told when writes to this client back up (True) and drain.
        self.tunnel_flow: Callable[[bool], None] | None = None
        self.leftover = b""

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        held = len(server.connections) + len(server.h2_connections)
        if held >= self.limits.max_connections and not server.make_room():
            # Nothing idle to close for it: refuse, as nginx does past worker_connections.
            server.refused += 1
            self.closed = True
            transport.abort()  # type: ignore[attr-defined]
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - unix sockets
                pass
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        self._trusted_peer = self.client is not None and server.trusted.covers(self.client[0])
        local = transport.get_extra_info("sockname")
        self.server_addr = (str(local[0]), int(local[1])) if isinstance(local, tuple) else None
        server.connections.add(self)
        self._arm_idle_timer()
        self._progress_at = self.loop.time()

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        if self.reads == 1 and data.startswith(H2_PREFACE_START):
            http2 = self.server.http2
            if http2 is not None:  # h2c with prior knowledge: transport/h2.py takes over
                self.server.connections.discard(self)
                self._cancel_idle_timer()
                http2(self, data)
                return
        if self.tunnel_sink is not None:
            self.tunnel_sink(data)
            return
        if self._bad is not None or self._lingering:
            return
        if self._stash:  # already read when reading paused: stays behind the rest
            self._stash += data
            return
        if len(data) <= HEAD_SLICE:
            self._feed(data)
        else:
            self._feed_slices(data)

    def _feed_slices(self, data: bytes) -> None:
        """Parse a large read piece by piece, holding back what follows a full queue."""
        view = memoryview(data)
        size = len(data)
        offset = 0
        max_pipelined = self.limits.max_pipelined
        while offset < size:
            if len(self.queue) > max_pipelined:
                self._stash = bytes(view[offset:])
                self.pause_reading()
                return
            step = BODY_SLICE if self._parsing is not None else HEAD_SLICE
            if not self._feed(view[offset : offset + step]):
                return
            offset += step

    def _feed(self, data: bytes | memoryview) -> bool:
        """Hand ``data`` to the parser and check the head and framing bounds.

        False when the connection stopped parsing (a refusal or an upgrade).
        """
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.leftover = bytes(data[upgrade.args[0] :])
            self._parked = True
            self.pause_reading()
            return False
        except httptools.HttpParserError as exc:
            # The flag, not the exception's __context__: how a callback's exception is
            # chained through httptools differs between CPython and compiled code.
            error = self._head_error
            if error is not None:
                self._refuse(error[0], error[1])
            else:
                self._refuse(400, f"malformed request: {exc}")
            return False
        if self._head_open:
            # Counted on raw bytes: a head still open after this piece holds at most all
            # of it (more exactly: less when the head began inside it).
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "the request head is too large")
                return False
        elif self._parsing is not None:
            self._framing += len(data)
            if self._framing > self.limits.max_header_bytes + self._body_total:
                self._refuse(431, "the body's chunk framing or trailers are too large")
                return False
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self._cancel_idle_timer()
        if self.tunnel_closed is not None:
            self.tunnel_closed()
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        task = self._task
        if task is not None and not task.done() and self.tunnel_closed is None:
            current = self.current
            if current is not None and not current.response_done:
                task.cancel()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._write_paused_at = self.loop.time()
        flow = self.tunnel_flow
        if flow is not None:
            flow(True)
        else:
            # Back-pressure: a client that does not read its answers sends no more requests.
            self.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        flow = self.tunnel_flow
        if flow is not None:
            flow(False)
        elif self.current is None and self._task is None:
            self._continue()

    # -- httptools callbacks --------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_open = True
        self._head_bytes = 0
        self._head_since = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._parsing is not None:
            # A chunked body's trailers: not forwarded, but counted.
            self._trailers += 1
            if self._trailers > self.limits.max_headers:
                raise self._stop(431, "the body has too many trailer fields")
            return
        headers = self._headers
        if len(headers) >= self.limits.max_headers:
            raise self._stop(431, "the request has too many header fields")
        headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._head_open = False
        parser = self.parser
        parsed: Any = httptools.parse_url(self._url)  # stubs say bytes where llhttp gives None
        raw_path: bytes = parsed.path
        path = raw_path.decode("latin-1")
        path = urllib.parse.unquote(path) if "%" in path else path
        headers = self._headers
        version = parser.get_http_version()
        scope: dict[str, Any] = {
            "type": "http",
            "http_version": version,
            "method": parser.get_method().decode("ascii"),
            "scheme": self.server.scheme,
            "path": path,
            "raw_path": raw_path,
            "query_string": parsed.query or b"",
            "headers": headers,
            "client": self.client,
            "server": self.server_addr,
        }
        if self._trusted_peer:
            _apply_forwarded(scope, headers, self.server.trusted)
        keep_alive = version != "1.0" and parser.should_keep_alive()
        if version == "1.0":
            keep_alive = _asks_keep_alive(headers)
        exchange = HttpExchange(self, scope, keep_alive)
        hosts = 0
        for name, value in headers:
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                exchange.has_body = value != b"0"
            elif name == b"transfer-encoding":
                exchange.has_body = True
            elif name == b"expect":
                exchange.expect_continue = value.lower() == b"100-continue"
        if hosts != 1:
            # RFC 9112 3.2: a request without Host, or with two, is answered 400.
            raise self._stop(400, "a request carries exactly one Host header")
        if parser.should_upgrade():
            _take_upgrade(exchange, headers)
        self._parsing = exchange
        self._framing = 0
        self._body_total = 0
        self._trailers = 0
        self.queue.append(exchange)
        if len(self.queue) > self.limits.max_pipelined:
            self.pause_reading()
        if self._task is None:
            self._task = self.loop.create_task(self._serve())
        else:
            self._wake()

    def on_body(self, body: bytes) -> None:
        exchange = self._parsing
        if exchange is not None:
            size = len(body)
            self._framing -= size
            self._body_total += size
            exchange._feed(body)
            self._wake()

    def on_message_complete(self) -> None:
        exchange = self._parsing
        if exchange is not None:
            exchange._body_done = True
            self._parsing = None
            self._wake()

    def _stop(self, status: int, detail: str) -> _HeadRefused:
        self._head_error = (status, detail)  # read back in _feed (see there)
        return _HeadRefused()

    # -- flow control ---------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self._reading_paused and not self.closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again, unless writes are backed up, enough requests wait, or it is parked."""
        if (
            self._reading_paused
            and not self.closed
            and not self._write_paused
            and not self._parked
            and not self._stash
            and len(self.queue) <= self.limits.max_pipelined
        ):
            self._reading_paused = False
            self._seen_reads = -1  # the body timeout counts from now, not from the pause
            self.transport.resume_reading()

    def unpark(self) -> None:
        """An upgrade is spliced: read the client again (its bytes go to the tunnel)."""
        self._parked = False
        if self._reading_paused and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()

    def _continue(self) -> None:
        """Parse what was held back, then read again if there is room."""
        stash = self._stash
        if stash and not self.closed and self._bad is None:
            self._stash = b""
            self._feed_slices(stash)
        self.resume_reading()

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ClientGone
        if self._write_paused:
            self._drain = self.loop.create_future()
            await self._drain
            if self.closed:
                raise ClientGone

    def abort(self) -> None:
        if not self.closed:
            self.transport.abort()
            self.closed = True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_for_data(self) -> None:
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _arm_idle_timer(self) -> None:
        # No timer per request: the server sweeps its connections once a second.
        self.idle_since = self.loop.time()

    def _cancel_idle_timer(self) -> None:
        self.idle_since = None

    def check_timeouts(self, now: float, keep_alive_timeout: float) -> None:
        """The sweeper's look at this connection: close or refuse what took too long."""
        limits = self.limits
        if self._write_paused and now - self._write_paused_at > limits.send_timeout:
            # Also when closing: a close waits for the buffer to flush, which it never will.
            logger.info("client did not read its answers; connection dropped")
            self.transport.abort()
            self.closed = True
            return
        if self.closed or self._lingering:
            return
        reads = self.reads
        if reads != self._seen_reads:
            self._seen_reads = reads
            self._progress_at = now
        if self._write_paused:
            return
        if self.tunnel_sink is not None or self._bad is not None:
            return  # a tunnel times itself (websocket.py); a refusal is on its way
        if self._reading_paused:
            return  # waiting on the gateway, not on the client
        if self._head_open:
            if now - self._head_since > limits.header_timeout:
                self._refuse(408, "the request head did not arrive in time")
        elif self._parsing is not None:
            if now - self._progress_at > limits.body_timeout:
                self._refuse(408, "the request body stopped arriving")
        else:
            since = self.idle_since
            if since is not None and self.current is None and now - since > keep_alive_timeout:
                self.transport.close()
                self.closed = True

    def close_idle(self) -> None:
        """Closed to make room for a new connection (at the worker's cap)."""
        self.transport.close()
        self.closed = True

    @property
    def evictable(self) -> bool:
        """Idle between requests (or before its first): nothing is lost by closing it."""
        return (
            self.idle_since is not None
            and self.current is None
            and not self.queue
            and not self._head_open
            and self.tunnel_sink is None
            and not self.closed
        )

    async def _drained(self) -> bool:
        """The answer waits in our buffer: take no next request until it drains (a
        client that never reads is dropped at send_timeout); False when it left."""
        try:
            await self.drain()
        except ClientGone:
            return False
        return True

    def _close_lingering(self, exchange: HttpExchange | None) -> None:
        """Close after the answer; if the client is still sending, read and drop its
        bytes for a moment first, so that the kernel does not reset the connection
        (and lose the answer) because of unread data, as nginx's lingering close."""
        if self.closed:
            return
        complete = exchange is not None and exchange.body_complete
        if complete or not self.transport.can_write_eof():
            self.transport.close()
            self.closed = True
            return
        self._lingering = True
        self.transport.write_eof()
        self._reading_paused = False
        self.transport.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.abort)

    def _answer_bad(self) -> None:
        assert self._bad is not None
        status, detail = self._bad
        headers, body = self.server.bad_request(status, detail)
        self.write(
            status_line(status)
            + b"".join(n + b": " + v + b"\r\n" for n, v in headers)
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        self._stash = b""
        self._close_lingering(None)

    def _refuse(self, status: int, detail: str) -> None:
        """Malformed input: answer once everything before it is answered, then close."""
        self._bad = (status, detail)
        self.pause_reading()
        if self._task is None:
            self._task = self.loop.create_task(self._serve())
        else:
            self._wake()

    # -- the request loop -----------------------------------------------------------

    async def _serve(self) -> None:
        handler = self.server.handler
        queue = self.queue
        try:
            while True:
                while not queue:
                    if self.closed:
                        return
                    if self._bad is not None:
                        self._answer_bad()
                        return
                    await self.wait_for_data()
                exchange = queue[0]
                self.current = exchange
                self._cancel_idle_timer()
                try:
                    await handler(exchange)
                except Exception:  # not CancelledError (a BaseException): that propagates
                    logger.exception("unhandled error in the request handler")
                    if not exchange.response_started:
                        headers, body = self.server.bad_request(500, "internal error")
                        exchange.keep_alive = False
                        exchange.respond(500, headers, body)
                queue.popleft()
                self.current = None
                if self._bad is not None and not exchange.response_started:
                    self._answer_bad()
                    return
                if (
                    self.closed
                    or not exchange.keep_alive
                    or not exchange.response_done
                    or not exchange.body_complete
                ):
                    # An unread or unfinished body leaves the stream's framing unknown.
                    if self.tunnel_sink is None:
                        self._close_lingering(exchange)
                    return
                if self._write_paused and not await self._drained():
                    return
                if not queue:
                    self._arm_idle_timer()
                self._continue()
        finally:
            self._task = None


def _asks_keep_alive(headers: list[tuple[bytes, bytes]]) -> bool:
    """An HTTP/1.0 request keeps its connection only when it asks to."""
    return any(n == b"connection" and v.lower() == b"keep-alive" for n, v in headers)


def _take_upgrade(exchange: HttpExchange, headers: list[tuple[bytes, bytes]]) -> None:
    """The protocol an upgrade request asks for; its connection ends with the exchange."""
    for name, value in headers:
        if name == b"upgrade":
            exchange.upgrade = value.lower()
    exchange.keep_alive = False


class _HeadRefused(Exception):
    pass


def _apply_forwarded(
    scope: dict[str, Any], headers: list[tuple[bytes, bytes]], trusted: TrustedPeers
) -> None:
    """Behind a trusted load balancer: the client and scheme it reports."""
    for name, value in headers:
        if name == b"x-forwarded-for":
            hops = [h.strip() for h in value.decode("latin-1").split(",") if h.strip()]
            while hops and trusted.covers(hops[-1]):
                hops.pop()
            if hops:
                scope["client"] = (hops[-1], 0)
        elif name == b"x-forwarded-proto":
            proto = value.decode("latin-1").strip().lower()
            if proto in ("http", "https"):
                scope["scheme"] = proto


def _idle_since(conn: ClientConnection) -> float:
    return conn.idle_since or 0.0


class NoTrustedPeers:
    """No load balancer in front: every peer is the client itself."""

    def covers(self, address: str) -> bool:
        return False


class HttpServer:
    """Accepts connections on one socket and runs ``handler`` for every request."""

    def __init__(
        self,
        handler: Handler,
        *,
        bad_request: BadRequest,
        keep_alive_timeout: float = 30.0,
        trusted_proxies: TrustedPeers | None = None,
        limits: ClientLimits | None = None,
    ) -> None:
        self.handler = handler
        #: Peers whose ``X-Forwarded-For``/``-Proto`` name the real client and scheme
        #: (:class:`gateway_api.security.trusted_proxies.TrustedProxies`); none by default.
        self.trusted: TrustedPeers = trusted_proxies or NoTrustedPeers()
        self.bad_request = bad_request
        self.keep_alive_timeout = keep_alive_timeout
        self.limits = limits or ClientLimits()
        self.connections: set[ClientConnection] = set()
        #: ``https`` when listening over TLS.
        self.scheme = "http"
        #: Takes over a connection that opens with the HTTP/2 preface (transport/h2.py);
        #: None: such a connection is refused as malformed HTTP/1.1.
        self.http2: Callable[[ClientConnection, bytes], None] | None = None
        #: Connections speaking HTTP/2 now (they count towards the cap too).
        self.h2_connections: set[Any] = set()
        #: Connections refused at the cap, and idle ones closed to make room.
        self.refused = 0
        self.evicted = 0
        self._refused_logged = 0
        self.loop = asyncio.get_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(
        self,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        backlog: int = 2048,
        ssl: Any = None,
    ) -> None:
        """Listen; with ``ssl`` (an ``ssl.SSLContext``, transport/tls.py) over TLS."""
        self.loop = asyncio.get_running_loop()
        self.scheme = "https" if ssl is not None else "http"
        self._server = await self.loop.create_server(
            lambda: ClientConnection(self),
            host,
            port,
            reuse_port=reuse_port,
            backlog=backlog,
            ssl=ssl,
            ssl_handshake_timeout=None if ssl is None else 10.0,
        )
        self._sweep()

    def _sweep(self) -> None:
        """Once a second: time out idle connections, slow heads and bodies, unread answers."""
        now = self.loop.time()
        keep_alive_timeout = self.keep_alive_timeout
        for conn in list(self.connections):
            conn.check_timeouts(now, keep_alive_timeout)
        if self.refused != self._refused_logged:
            logger.warning(
                "connections refused: the worker is at its cap",
                extra={
                    "refused": self.refused - self._refused_logged,
                    "max_connections": self.limits.max_connections,
                },
            )
            self._refused_logged = self.refused
        self._sweeper = self.loop.call_later(1.0, self._sweep)

    def make_room(self) -> bool:
        """At the cap: close the longest-idle connections (nginx does so); False if none."""
        idle = [conn for conn in self.connections if conn.evictable]
        if not idle:
            return False
        idle.sort(key=_idle_since)
        for conn in idle[:EVICT_BATCH]:
            conn.close_idle()
            self.evicted += 1
        return True

    @property
    def port(self) -> int:
        assert self._server is not None
        server: Any = self._server  # ``sockets`` is a list on uvloop, a tuple on asyncio
        return int(server.sockets[0].getsockname()[1])

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let requests in flight finish (up to ``grace``), then close."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        deadline = self.loop.time() + grace
        # Once, at shutdown, a poll: an event set by every finished request would cost
        # the request path.
        while any(c.current for c in self.connections):
            if self.loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()
        for h2conn in list(self.h2_connections):
            h2conn.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
