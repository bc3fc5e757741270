"""HTTP/2 on the public listener: h2c with prior knowledge (RFC 9113 section 3.3).

A connection whose first bytes are the HTTP/2 preface is handed over from the HTTP/1.1
server (:mod:`gateway_api.transport.server`) to :class:`H2Server`, which speaks HTTP/2
with the ``h2`` library (python-hyper's state machine; hyper-h2 is what httpx, hypercorn
and Twisted use). Each stream is one :class:`H2Exchange`, the transport's
:class:`~gateway_api.transport.exchange.Exchange`: the proxy above runs the same
pipeline (token, tenant, RBAC, quotas, region, balancing, retries) for it as for an
HTTP/1.1 request, and forwards to the services over HTTP/1.1 as before.

Bounds, after nginx's and Envoy's HTTP/2 defaults:

* ``max_concurrent_streams`` (100) advertised and enforced: a client that opens more has
  the connection closed with PROTOCOL_ERROR;
* the header list: ``max_header_bytes`` (the same bound as an HTTP/1.1 head);
* request bodies: flow control. A stream's window (64 KiB) is only opened again for
  what the proxy has read, so a client cannot make the gateway buffer more than that per
  stream; responses are sent as the client's windows allow, and a proxy writing faster
  waits in ``drain()``;
* rapid reset (CVE-2023-44487): a stream the client resets is cancelled at once, and a
  client that resets more than ``max_resets_per_second`` streams in a second gets
  GOAWAY ENHANCE_YOUR_CALM and is disconnected;
* idle connections (no stream open) are closed after the keep-alive timeout; a client
  that leaves our writes unread for ``send_timeout`` is dropped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from gateway_api.transport.exchange import ClientGone, Handler, TrustedPeers
from gateway_api.transport.server import ClientLimits, _apply_forwarded

if TYPE_CHECKING:
    from gateway_api.transport.server import ClientConnection, HttpServer

logger = logging.getLogger("gateway.h2")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: Connection-specific fields (RFC 9113 8.2.2): never sent in an HTTP/2 response.
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
#: Bytes of response queued per stream before ``drain()`` waits.
_OUT_HIGH_WATER = 256 * 1024


class H2Limits:
    """What one HTTP/2 client connection may hold or take."""

    __slots__ = ("max_concurrent_streams", "max_resets_per_second")

    def __init__(self, max_concurrent_streams: int = 100, max_resets_per_second: int = 200) -> None:
        self.max_concurrent_streams = max_concurrent_streams
        self.max_resets_per_second = max_resets_per_second


class H2Exchange:
    """One HTTP/2 stream: the request as a scope, the answer through the connection."""

    __slots__ = (
        "_body",
        "_body_done",
        "_end_pending",
        "_out",
        "_out_bytes",
        "_trailers",
        "has_body",
        "keep_alive",
        "reset",
        "response_done",
        "response_started",
        "scope",
        "server",
        "stream_id",
        "task",
        "upgrade",
    )

    def __init__(self, server: H2Server, stream_id: int, scope: dict[str, Any]) -> None:
        self.server = server
        self.stream_id = stream_id
        self.scope = scope
        self.keep_alive = True
        self.has_body = True
        self.upgrade: bytes | None = None
        self.response_started = False
        self.response_done = False
        self.reset = False
        self.task: asyncio.Task[None] | None = None
        self._body: collections.deque[bytes] = collections.deque()
        self._body_done = False
        self._out: collections.deque[bytes] = collections.deque()
        self._out_bytes = 0
        self._end_pending = False
        self._trailers: list[tuple[bytes, bytes]] | None = None

    @property
    def conn(self) -> Any:
        raise RuntimeError("HTTP/2 streams have no raw connection (no upgrades)")

    @property
    def body_complete(self) -> bool:
        return self._body_done

    async def receive(self) -> bytes:
        server = self.server
        while not self._body:
            if self._body_done:
                return b""
            if self.reset or server.closed:
                raise ClientGone
            await server.wait()
        data = self._body.popleft()
        server.consumed(self.stream_id, len(data))
        return data

    def start_response(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        *,
        length: int | None,
        body_follows: bool = True,
        flush: bool = True,
    ) -> None:
        self.response_started = True
        fields = [(b":status", b"%d" % status)]
        fields += [(n, v) for n, v in headers if n not in _HOP_BY_HOP]
        if length is not None:
            fields.append((b"content-length", b"%d" % length))
        self.server.send_headers(self, fields, end_stream=not body_follows)
        if not body_follows:
            self.response_done = True

    def write(self, data: bytes) -> None:
        if data and not self.reset:
            self._out.append(data)
            self._out_bytes += len(data)
            self.server.pump(self)

    async def drain(self) -> None:
        server = self.server
        while self._out_bytes > _OUT_HIGH_WATER or server.write_paused:
            if self.reset or server.closed:
                raise ClientGone
            await server.wait()

    def end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        """No more response data; ``trailers`` (gRPC's status) follow what is queued."""
        if not self.response_done:
            self._trailers = trailers
            self._end_pending = True
            self.server.pump(self)

    @property
    def body_done(self) -> bool:
        """The client ended its side of the stream (no more request data)."""
        return self._body_done and not self._body

    def abort(self) -> None:
        self.server.reset_stream(self, h2.errors.ErrorCodes.INTERNAL_ERROR)

    def stop_reading(self) -> None:
        """The answer is complete: the client may stop sending (RST_STREAM NO_ERROR)."""
        self.server.reset_stream(self, h2.errors.ErrorCodes.NO_ERROR)

    def respond(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, head: bool = False
    ) -> None:
        sends = bool(body) and not head
        self.start_response(status, headers, length=len(body), body_follows=sends)
        if sends:
            self.write(body)
            self.end()


class H2Server(asyncio.Protocol):
    """One HTTP/2 client connection, taken over from the HTTP/1.1 server."""

    def __init__(
        self,
        handler: Handler,
        bad_request: Callable[[int, str], tuple[list[tuple[bytes, bytes]], bytes]],
        client_limits: ClientLimits,
        limits: H2Limits,
        keep_alive_timeout: float,
        registry: set[Any],
        trusted: TrustedPeers | None = None,
        grpc: Handler | None = None,
    ) -> None:
        self.handler = handler
        #: The handler of gRPC calls (``content-type: application/grpc``), if any.
        self.grpc = grpc
        self.trusted = trusted
        self.bad_request = bad_request
        self.client_limits = client_limits
        self.limits = limits
        self.keep_alive_timeout = keep_alive_timeout
        self.registry = registry
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()
        self.client: tuple[str, int] | None = None
        self.server_addr: tuple[str, int] | None = None
        self._trusted_peer = False
        self.scheme = "http"
        self.closed = False
        self.write_paused = False
        self._write_paused_at = 0.0
        self.streams: dict[int, H2Exchange] = {}
        self._resets: collections.deque[float] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._idle_since = time.monotonic()
        self._sweeper: asyncio.TimerHandle | None = None
        self.requests = 0
        config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=True
        )
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.decoder.max_header_list_size = client_limits.max_header_bytes

    # -- taking over -------------------------------------------------------------------

    def take_over(
        self,
        transport: asyncio.Transport,
        client: tuple[str, int] | None,
        server_addr: tuple[str, int] | None,
        first: bytes,
    ) -> None:
        """Become ``transport``'s protocol; ``first``: what the client sent so far."""
        self.transport = transport
        self.client = client
        self.server_addr = server_addr
        self._trusted_peer = (
            self.trusted is not None and client is not None and self.trusted.covers(client[0])
        )
        self.registry.add(self)
        transport.set_protocol(self)
        self.h2.initiate_connection()
        self.h2.update_settings(
            {
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.limits.max_concurrent_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self.client_limits.max_header_bytes,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            }
        )
        self._flush()
        self._sweeper = self.loop.call_later(1.0, self._sweep)
        self.data_received(first)

    # -- asyncio.Protocol ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            logger.info("HTTP/2 protocol error; connection closed", extra={"error": str(exc)})
            self._close(h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return
        for event in events:
            self._event(event)
            if self.closed:
                return
        self._flush()
        self._wake()

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event)
        elif isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.StreamEnded):
            exchange = self.streams.get(event.stream_id)
            if exchange is not None:
                exchange._body_done = True
        elif isinstance(event, h2.events.StreamReset):
            self._reset_by_client(event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            for exchange in list(self.streams.values()):
                self.pump(exchange)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._flush()
            self.transport.close()
            self.closed = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.registry.discard(self)
        if self._sweeper is not None:
            self._sweeper.cancel()
        for exchange in list(self.streams.values()):
            exchange.reset = True
            if exchange.task is not None and not exchange.task.done():
                exchange.task.cancel()
        self._wake()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._write_paused_at = time.monotonic()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()

    # -- streams ---------------------------------------------------------------------

    def _request(self, event: h2.events.RequestReceived) -> None:
        pseudo: dict[bytes, bytes] = {}
        headers: list[tuple[bytes, bytes]] = []
        for name, value in event.headers or []:
            name, value = bytes(name), bytes(value)
            if name.startswith(b":"):
                pseudo[name] = value
            else:
                headers.append((name, value))
        stream_id = event.stream_id
        method = pseudo.get(b":method", b"").decode("ascii", "replace")
        target = pseudo.get(b":path", b"")
        authority = pseudo.get(b":authority")
        if authority is not None and not any(n == b"host" for n, _ in headers):
            headers.insert(0, (b"host", authority))
        raw_path, _, query = target.partition(b"?")
        path = raw_path.decode("latin-1")
        path = urllib.parse.unquote(path) if "%" in path else path
        scope: dict[str, Any] = {
            "type": "http",
            "http_version": "2",
            "method": method,
            "scheme": self.scheme,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
            "client": self.client,
            "server": self.server_addr,
        }
        if self._trusted_peer and self.trusted is not None:
            _apply_forwarded(scope, headers, self.trusted)
        exchange = H2Exchange(self, stream_id, scope)
        exchange.has_body = not event.stream_ended
        exchange._body_done = event.stream_ended is not None
        self.streams[stream_id] = exchange
        self.requests += 1
        if not raw_path.startswith(b"/") or method in {"CONNECT", ""}:
            head, body = self.bad_request(400, "an HTTP/2 request needs a method and a path")
            exchange.respond(400, head, body)
            self._finish(exchange)
            return
        handler = self.handler
        if self.grpc is not None and _is_grpc(headers):
            handler = self.grpc
        exchange.task = self.loop.create_task(self._run(exchange, handler))

    def _data(self, event: h2.events.DataReceived) -> None:
        exchange = self.streams.get(event.stream_id)
        if exchange is None or exchange.reset:
            # Answered or reset already: give the window back, drop the bytes.
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            return
        if event.data:
            exchange._body.append(event.data)
        padding = event.flow_controlled_length - len(event.data)
        if padding:
            self.h2.acknowledge_received_data(padding, event.stream_id)
        if event.stream_ended is not None:
            exchange._body_done = True

    def consumed(self, stream_id: int, size: int) -> None:
        """The proxy read ``size`` body bytes of a stream: the client may send as many."""
        if self.closed or size == 0:
            return
        try:
            self.h2.acknowledge_received_data(size, stream_id)
        except h2.exceptions.StreamClosedError:
            return
        self._flush()

    async def _run(self, exchange: H2Exchange, handler: Handler) -> None:
        try:
            await handler(exchange)
        except ClientGone:
            return  # the stream was reset or the connection lost: nothing to answer
        except Exception:  # not CancelledError: a reset stream's task ends with it
            logger.exception("unhandled error in the request handler (HTTP/2)")
            if not exchange.response_started and not exchange.reset:
                head, body = self.bad_request(500, "internal error")
                exchange.respond(500, head, body)
        finally:
            # Ended without an answer: reset. An ended answer still queued goes out as
            # the client's window opens (pump).
            if not (exchange.reset or exchange.response_done or exchange._end_pending):
                self.reset_stream(exchange, h2.errors.ErrorCodes.INTERNAL_ERROR)
            self._finish(exchange)

    def _finish(self, exchange: H2Exchange) -> None:
        if exchange.response_done or exchange.reset:
            self.streams.pop(exchange.stream_id, None)
            if not self.streams:
                self._idle_since = time.monotonic()

    # -- sending ---------------------------------------------------------------------

    def send_headers(
        self, exchange: H2Exchange, fields: list[tuple[bytes, bytes]], *, end_stream: bool
    ) -> None:
        if self.closed or exchange.reset:
            return
        try:
            self.h2.send_headers(exchange.stream_id, fields, end_stream=end_stream)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            exchange.reset = True
            return
        self._flush()
        if end_stream:
            exchange.response_done = True
            self._finish(exchange)

    def pump(self, exchange: H2Exchange) -> None:
        """Send what the stream's and the connection's windows allow."""
        if self.closed or exchange.reset:
            return
        stream_id = exchange.stream_id
        out = exchange._out
        try:
            while out:
                window = min(
                    self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size
                )
                if window <= 0:
                    break
                chunk = out[0]
                if len(chunk) > window:
                    out[0] = chunk[window:]
                    chunk = chunk[:window]
                else:
                    out.popleft()
                exchange._out_bytes -= len(chunk)
                self.h2.send_data(stream_id, chunk)
            if not out and exchange._end_pending and not exchange.response_done:
                if exchange._trailers is not None:
                    self.h2.send_headers(stream_id, exchange._trailers, end_stream=True)
                else:
                    self.h2.end_stream(stream_id)
                exchange.response_done = True
        except (
            h2.exceptions.StreamClosedError,
            h2.exceptions.FlowControlError,
            h2.exceptions.ProtocolError,
        ):
            exchange.reset = True
        self._flush()
        if exchange.response_done and (exchange.task is None or exchange.task.done()):
            self._finish(exchange)
        self._wake()

    def reset_stream(self, exchange: H2Exchange, code: h2.errors.ErrorCodes) -> None:
        if exchange.reset or self.closed:
            return
        exchange.reset = True
        with contextlib.suppress(h2.exceptions.StreamClosedError):  # closed already: done
            self.h2.reset_stream(exchange.stream_id, code)
        self._flush()
        self._finish(exchange)

    def _reset_by_client(self, stream_id: int) -> None:
        now = time.monotonic()
        resets = self._resets
        resets.append(now)
        while resets and now - resets[0] > 1.0:
            resets.popleft()
        exchange = self.streams.pop(stream_id, None)
        if exchange is not None:
            exchange.reset = True
            if exchange.task is not None and not exchange.task.done():
                exchange.task.cancel()
        if len(resets) > self.limits.max_resets_per_second:
            logger.warning(
                "HTTP/2 client reset too many streams; connection closed",
                extra={"resets_per_second": len(resets), "client": self.client},
            )
            self._close(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.closed:
            self.transport.write(data)

    def _close(self, code: h2.errors.ErrorCodes) -> None:
        if self.closed:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):  # a GOAWAY may not fit now
            self.h2.close_connection(error_code=code)
            self._flush()
        self.closed = True
        self.transport.close()
        for exchange in list(self.streams.values()):
            exchange.reset = True
            if exchange.task is not None and not exchange.task.done():
                exchange.task.cancel()
        self._wake()

    # -- waiting -----------------------------------------------------------------------

    async def wait(self) -> None:
        """Until something happens on the connection (data, window, drain, close)."""
        if self._waiter is None or self._waiter.done():
            self._waiter = self.loop.create_future()
        await self._waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _sweep(self) -> None:
        now = time.monotonic()
        if self.closed:
            return
        if self.write_paused and now - self._write_paused_at > self.client_limits.send_timeout:
            logger.info("HTTP/2 client did not read its answers; connection dropped")
            self.transport.abort()
            self.closed = True
            return
        if not self.streams and now - self._idle_since > self.keep_alive_timeout:
            self._close(h2.errors.ErrorCodes.NO_ERROR)
            return
        self._sweeper = self.loop.call_later(1.0, self._sweep)


def _is_grpc(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.startswith(b"application/grpc")
    return False


def enable_http2(
    server: HttpServer, limits: H2Limits | None = None, grpc: Handler | None = None
) -> None:
    """Let ``server`` take h2c connections (prior knowledge) with these bounds; gRPC
    calls go to ``grpc`` when given (else to the server's handler, as any request)."""
    h2_limits = limits or H2Limits()

    def take_over(conn: ClientConnection, first: bytes) -> None:
        h2server = H2Server(
            server.handler,
            server.bad_request,
            server.limits,
            h2_limits,
            server.keep_alive_timeout,
            server.h2_connections,
            server.trusted,
            grpc,
        )
        h2server.scheme = server.scheme
        h2server.take_over(conn.transport, conn.client, conn.server_addr, first)

    server.http2 = take_over
