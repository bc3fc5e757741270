"""HTTP/2 towards the upstreams (h2c with prior knowledge), for gRPC.

The HTTP/1.1 forwarding core (:mod:`gateway_api.transport.http_client`) sends one
request per connection at a time; gRPC needs HTTP/2: streams both ways at once, and
trailers. :class:`H2Client` keeps, per instance, at most ``max_connections``
connections, each multiplexing up to the instance's ``SETTINGS_MAX_CONCURRENT_STREAMS``
(capped by ``max_streams``) streams; a new connection is opened only when every one held
is full, and a request that finds all of them full and the cap reached fails at once
(:class:`H2Busy`) rather than queueing without bound.

Bounds: what an upstream sends on a stream is buffered only up to the stream's window
(64 KiB, the HTTP/2 default): the window is opened again only for what the proxy has
taken (:meth:`H2Stream.read`), so a client that reads slowly slows the upstream, never
the gateway's memory. Request data waits for the upstream's windows
(:meth:`H2Stream.send`). An idle connection (no stream) is closed after
``idle_timeout``; a connection the upstream ends (GOAWAY, reset, EOF) fails its open
streams with :class:`H2StreamError`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from typing import cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

logger = logging.getLogger("gateway.h2_client")

#: Streams per upstream connection when the upstream allows more (grpcio allows 100).
DEFAULT_MAX_STREAMS = 100
#: Connections per instance.
DEFAULT_MAX_CONNECTIONS = 4
#: The largest header list an upstream may send us (as the public listener's bound).
MAX_HEADER_LIST = 64 * 1024


class H2Error(Exception):
    """Base of this client's errors."""


class H2ConnectFailed(H2Error):
    """No connection could be made (nothing was sent: always safe to retry)."""


class H2Busy(H2Error):
    """Every connection to the instance is full of streams and no more may be opened."""


class H2StreamError(H2Error):
    """The stream was reset or its connection lost before it ended."""


class H2Stream:
    """One request/response exchange on an upstream connection."""

    __slots__ = (
        "_data",
        "_ended",
        "_error",
        "_waiter",
        "conn",
        "headers",
        "stream_id",
        "trailers",
    )

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        #: The response headers once received (``:status`` included); None before.
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self._data: collections.deque[bytes] = collections.deque()
        self._ended = False
        self._error: str | None = None
        self._waiter: asyncio.Future[None] | None = None

    # -- fed by the connection -----------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, reason: str) -> None:
        if not self._ended:
            self._error = reason
        self._wake()

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    # -- used by the proxy ----------------------------------------------------------

    async def response(self) -> list[tuple[bytes, bytes]]:
        """The response headers (waits for them); :class:`H2StreamError` if reset first."""
        while self.headers is None:
            if self._error is not None:
                raise H2StreamError(self._error)
            await self._wait()
        return self.headers

    async def read(self) -> bytes:
        """The next piece of response data; ``b""`` when the stream ended."""
        while not self._data:
            if self._ended:
                return b""
            if self._error is not None:
                raise H2StreamError(self._error)
            await self._wait()
        data = self._data.popleft()
        self.conn.consumed(self.stream_id, len(data))
        return data

    @property
    def ended(self) -> bool:
        return self._ended

    async def send(self, data: bytes, *, end: bool = False) -> None:
        """Send request data as the windows allow; ``end`` closes our side."""
        await self.conn.send_data(self, data, end=end)

    def end(self) -> None:
        """Close our side (no more request data)."""
        self.conn.end_stream(self)

    def cancel(self) -> None:
        """Reset the stream (CANCEL), as gRPC does for a cancelled call."""
        self.conn.reset(self, h2.errors.ErrorCodes.CANCEL)

    def finish(self) -> None:
        """Done with it: an unfinished stream is cancelled; one the upstream ended but
        ours is still open is closed (RST_STREAM NO_ERROR), freeing its slot."""
        self.conn.reset(
            self, h2.errors.ErrorCodes.NO_ERROR if self._ended else h2.errors.ErrorCodes.CANCEL
        )


class H2Connection(asyncio.Protocol):
    """One HTTP/2 client connection to an instance."""

    def __init__(self, key: str, max_streams: int) -> None:
        self.key = key
        self.max_streams = max_streams
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.streams: dict[int, H2Stream] = {}
        self.idle_since = time.monotonic()
        self._write_paused = False
        self._waiters: list[asyncio.Future[None]] = []
        config = h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_inbound_headers=True
        )
        self.h2 = h2.connection.H2Connection(config=config)

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses: no isinstance check.)
        self.transport = cast(asyncio.Transport, transport)
        self.h2.initiate_connection()
        self.h2.update_settings(
            {
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
            }
        )
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._lose(f"HTTP/2 protocol error: {exc}")
            return
        for event in events:
            self._event(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose("connection lost" if exc is None else f"connection lost: {exc}")

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_senders()

    # -- events ------------------------------------------------------------------------

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.headers = [(bytes(n), bytes(v)) for n, v in event.headers or []]
                stream._wake()
        elif isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.TrailersReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.trailers = [(bytes(n), bytes(v)) for n, v in event.headers or []]
        elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
            self._stream_closed(event)
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._wake_senders()
        elif isinstance(event, h2.events.ConnectionTerminated):
            # GOAWAY: streams above the last one the upstream processed never ran.
            self._lose(f"GOAWAY from the upstream ({event.error_code!s})")
            if self.transport is not None:
                self.transport.close()

    def _data(self, event: h2.events.DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:  # cancelled by us: give the window back, drop the bytes
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            return
        if event.data:
            stream._data.append(event.data)
        padding = event.flow_controlled_length - len(event.data or b"")
        if padding:
            self.h2.acknowledge_received_data(padding, event.stream_id)
        stream._wake()

    def _stream_closed(self, event: h2.events.StreamEnded | h2.events.StreamReset) -> None:
        stream = self.streams.pop(event.stream_id, None)
        if stream is None:
            return
        if isinstance(event, h2.events.StreamEnded):
            stream._ended = True
            stream._wake()
        else:
            stream._fail(f"stream reset by the upstream ({event.error_code!s})")
        self._stream_gone()

    def _stream_gone(self) -> None:
        if not self.streams:
            self.idle_since = time.monotonic()
        self._wake_senders()

    def _lose(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in list(self.streams.values()):
            stream._fail(reason)
        self.streams.clear()
        self._wake_senders()

    # -- streams -------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Streams this connection may still open."""
        if self.closed:
            return 0
        allowed = min(self.max_streams, self.h2.remote_settings.max_concurrent_streams)
        return allowed - len(self.streams)

    def open(self, headers: list[tuple[bytes, bytes]], *, end_stream: bool = False) -> H2Stream:
        """Start a stream with these headers (pseudo-headers first)."""
        stream_id = self.h2.get_next_available_stream_id()
        stream = H2Stream(self, stream_id)
        self.streams[stream_id] = stream
        self.h2.send_headers(stream_id, headers, end_stream=end_stream)
        self._flush()
        return stream

    async def send_data(self, stream: H2Stream, data: bytes, *, end: bool) -> None:
        view = memoryview(data)
        while view:
            if self.closed or stream._error is not None:
                raise H2StreamError(stream._error or "connection closed")
            try:
                window = min(
                    self.h2.local_flow_control_window(stream.stream_id),
                    self.h2.max_outbound_frame_size,
                )
            except h2.exceptions.StreamClosedError as exc:
                raise H2StreamError("stream closed") from exc
            if window <= 0 or self._write_paused:
                await self._wait_to_send()
                continue
            chunk, view = view[:window], view[window:]
            self.h2.send_data(stream.stream_id, bytes(chunk))
            self._flush()
        if end:
            self.end_stream(stream)

    def end_stream(self, stream: H2Stream) -> None:
        if self.closed:
            return
        with contextlib.suppress(h2.exceptions.StreamClosedError):  # ended already
            self.h2.end_stream(stream.stream_id)
            self._flush()

    def reset(self, stream: H2Stream, code: h2.errors.ErrorCodes) -> None:
        known = self.streams.pop(stream.stream_id, None) is not None
        if self.closed:
            return
        stream._fail("reset by the gateway")
        with contextlib.suppress(h2.exceptions.StreamClosedError):  # closed already: done
            self.h2.reset_stream(stream.stream_id, code)
            self._flush()
        if known:
            self._stream_gone()

    def consumed(self, stream_id: int, size: int) -> None:
        if self.closed or not size:
            return
        with contextlib.suppress(h2.exceptions.StreamClosedError):  # ended: nothing to open
            self.h2.acknowledge_received_data(size, stream_id)
            self._flush()

    async def _wait_to_send(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _wake_senders(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            with contextlib.suppress(h2.exceptions.ProtocolError):  # GOAWAY may not fit
                self.h2.close_connection()
                self._flush()
            self.transport.close()
        self._lose("closed by the gateway")


class H2Client:
    """HTTP/2 connections to the upstream instances, pooled and multiplexed per instance."""

    def __init__(
        self,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_streams: int = DEFAULT_MAX_STREAMS,
        idle_timeout: float = 60.0,
    ) -> None:
        self.max_connections = max_connections
        self.max_streams = max_streams
        self.idle_timeout = idle_timeout
        self._pools: dict[str, list[H2Connection]] = {}
        self._connecting: dict[str, int] = {}
        self._sweeper: asyncio.TimerHandle | None = None

    async def open(
        self,
        url: str,
        headers: list[tuple[bytes, bytes]],
        *,
        connect_timeout: float,
        end_stream: bool = False,
    ) -> H2Stream:
        """A new stream to the instance at ``url`` (``http://host:port``)."""
        conn = await self._connection(url, connect_timeout)
        return conn.open(headers, end_stream=end_stream)

    async def _connection(self, url: str, connect_timeout: float) -> H2Connection:
        pool = self._pools.setdefault(url, [])
        for conn in pool:
            if conn.capacity > 0:
                return conn
        if len(pool) + self._connecting.get(url, 0) >= self.max_connections:
            raise H2Busy(f"{self.max_connections} connections full of streams")
        host, _, port = url.removeprefix("http://").rpartition(":")
        loop = asyncio.get_running_loop()
        self._connecting[url] = self._connecting.get(url, 0) + 1
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: H2Connection(url, self.max_streams), host, int(port)
                )
        except (OSError, TimeoutError) as exc:
            raise H2ConnectFailed(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._connecting[url] -= 1
        pool[:] = [c for c in pool if not c.closed]
        pool.append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_later(1.0, self._sweep)
        return conn

    def _sweep(self) -> None:
        now = time.monotonic()
        for url, pool in list(self._pools.items()):
            for conn in pool:
                if (
                    not conn.closed
                    and not conn.streams
                    and now - conn.idle_since > self.idle_timeout
                ):
                    conn.close()
            pool[:] = [c for c in pool if not c.closed]
            if not pool:
                del self._pools[url]
        self._sweeper = (
            asyncio.get_running_loop().call_later(1.0, self._sweep) if self._pools else None
        )

    def connections(self, url: str) -> int:
        """Open connections to ``url`` (tests, ``/cluster``)."""
        return sum(1 for c in self._pools.get(url, []) if not c.closed)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for pool in self._pools.values():
            for conn in pool:
                conn.close()
        self._pools.clear()


def header_value(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of ``name`` in a header list."""
    for key, value in headers:
        if key == name:
            return value
    return None
