"""WebSocket proxying as a tunnel: forward the upgrade, then relay raw bytes both ways.

The gateway authenticates and routes the upgrade request like any other; once the
upstream answers ``101 Switching Protocols`` the two connections are spliced, so
frames, extensions (permessage-deflate) and close handshakes pass untouched, as
nginx does. Any other answer is relayed as a normal response.

A tunnel opened with a caller's token ends when that caller's session is revoked
(logout, a newer login, a revoked refresh token): both connections are closed as soon
as the gateway learns of it (:meth:`RevokedSessions.watch`), so a logged-out user does
not keep a live socket. The tunnel is raw bytes, so no close frame is injected (it
could land inside a frame the upstream is sending); the client sees the TCP close.

Flow control runs both ways: while writes to one side are backed up, the other side is
not read, so a peer that floods a tunnel whose far end does not read fills kernel
buffers, not the gateway's memory. A tunnel that carries no byte either way for
``idle_timeout`` seconds, or that has lasted ``max_lifetime``, is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgelib.problems import GatewayTimeout, ServiceUnavailable
from gateway_api.problems import BadGateway, UpstreamUnreachable
from gateway_api.transport.exchange import Exchange, TunnelEnd
from gateway_api.transport.http_client import (
    ConnectFailed,
    HttpClient,
    UpstreamConnection,
    UpstreamError,
    UpstreamTimeout,
    request_head,
)
from gateway_api.transport.server import status_line

if TYPE_CHECKING:
    from gateway_api.routing.table import Route
    from gateway_api.security.sessions import RevokedSessions
    from gateway_api.upstreams.pools import Pool

logger = logging.getLogger("gateway.websocket")

#: Headers of a 101 answer that the client must see even though they are hop-by-hop.
_UPGRADE_HEADERS = frozenset({b"upgrade", b"connection"})


async def tunnel_websocket(
    exchange: Exchange,
    *,
    client: HttpClient,
    pool: Pool,
    route: Route,
    headers: bytes,
    hash_key: str | None,
    session_id: str | None = None,
    revoked: RevokedSessions | None = None,
    idle_timeout: float = 300.0,
    max_lifetime: float = 7200.0,
    response_dropped: frozenset[bytes] = frozenset(),
) -> tuple[int, str]:
    """Relay one WebSocket session; returns (status, instance id) once it ends.

    With ``session_id`` and ``revoked``, the tunnel closes when that session is revoked.
    ``response_dropped`` names upstream headers the client must not see.
    """
    instance = pool.choose(route.balancing, hash_key)
    if instance is None:
        raise ServiceUnavailable(f"no healthy instance of {pool.service}")
    scope = exchange.scope
    target: bytes = scope["raw_path"]
    if scope["query_string"]:
        target += b"?" + scope["query_string"]
    origin = client.pool(instance.url)
    instance.in_flight += 1
    try:
        try:
            upstream = await origin.connect(route.connect_timeout)
        except ConnectFailed as exc:
            instance.errors += 1
            instance.breaker.on_failure(time.monotonic())
            raise UpstreamUnreachable(f"{instance.spec.service} refused the connection") from exc
        try:
            upstream.start(
                request_head("GET", target, instance.url[7:].encode(), headers) + b"\r\n",
                head_request=False,
                upgrade=True,
            )
            resp = await upstream.response(route.read_timeout)
        except UpstreamTimeout as exc:
            upstream.abort()
            instance.breaker.on_failure(time.monotonic())
            raise GatewayTimeout(f"{instance.spec.service} did not answer in time") from exc
        except UpstreamError as exc:
            upstream.abort()
            instance.errors += 1
            instance.breaker.on_failure(time.monotonic())
            raise BadGateway(f"{instance.spec.service} failed to answer") from exc
        instance.breaker.on_success()
        if resp.status != 101 or not resp.upgraded:
            # Refused by the upstream (403, 426 ...): relay its answer as it is.
            body = []
            while chunk := await upstream.chunk(route.read_timeout):
                body.append(chunk)
            upstream.abort()
            kept = [
                (n, v) for n, v in resp.headers if n not in _FRAMING and n not in response_dropped
            ]
            exchange.keep_alive = False
            exchange.respond(resp.status, kept, b"".join(body))
            return resp.status, instance.spec.id
        conn = exchange.conn
        head = [status_line(101)]
        head.extend(
            name + b": " + value + b"\r\n"
            for name, value in resp.headers
            if name not in response_dropped or name in _UPGRADE_HEADERS
        )
        head.append(b"\r\n")
        exchange.response_started = True
        conn.write(b"".join(head))
        await _splice(
            exchange, upstream, session_id, revoked, route.name, idle_timeout, max_lifetime
        )
        exchange.response_done = True
        instance.served += 1
        return 101, instance.spec.id
    finally:
        instance.in_flight -= 1


_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection", b"upgrade"})


async def _splice(
    exchange: Exchange,
    upstream: UpstreamConnection,
    session_id: str | None,
    revoked: RevokedSessions | None,
    route: str,
    idle_timeout: float,
    max_lifetime: float,
) -> None:
    """Relay bytes until either side closes, the session is revoked, the tunnel idles
    too long or reaches its lifetime; then close both."""
    conn = exchange.conn
    upstream_transport = upstream.transport
    assert upstream_transport is not None
    client_transport = conn.transport
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def finished() -> None:
        if not done.done():
            done.set_result(None)

    _join(conn, upstream, finished)

    def session_ended() -> None:
        logger.info("websocket closed: its session was revoked", extra={"route": route})
        finished()

    stop_watching = (
        revoked.watch(session_id, session_ended)
        if revoked is not None and session_id is not None
        else None
    )
    timed_out = False
    try:
        timed_out = await _watch(done, conn, upstream, route, idle_timeout, max_lifetime)
    finally:
        if stop_watching is not None:
            stop_watching()
        if timed_out:
            # Nothing to flush that matters, and a peer that does not read would hold
            # a graceful close open.
            upstream_transport.abort()
            client_transport.abort()
        else:
            upstream_transport.close()
            client_transport.close()
        conn.closed = True


def _join(conn: TunnelEnd, upstream: UpstreamConnection, finished: Callable[[], None]) -> None:
    """Splice the two ends: each one's bytes go to the other, back-pressure both ways."""
    upstream_transport = upstream.transport
    assert upstream_transport is not None
    client_transport = conn.transport

    def client_backed_up(paused: bool) -> None:
        # Writes to the client wait: stop reading what the upstream sends them.
        if paused:
            upstream_transport.pause_reading()
        elif not upstream.closed:
            upstream_transport.resume_reading()

    def upstream_backed_up(paused: bool) -> None:
        if paused:
            client_transport.pause_reading()
        elif not conn.closed:
            client_transport.resume_reading()

    conn.tunnel_sink = upstream_transport.write
    conn.tunnel_closed = finished
    conn.tunnel_flow = client_backed_up
    upstream.tunnel_sink = client_transport.write
    upstream.tunnel_closed = finished
    upstream.tunnel_flow = upstream_backed_up
    if upstream.leftover:
        client_transport.write(upstream.leftover)
    if conn.leftover:
        upstream_transport.write(conn.leftover)
    conn.unpark()


async def _watch(
    done: asyncio.Future[None],
    conn: TunnelEnd,
    upstream: UpstreamConnection,
    route: str,
    idle_timeout: float,
    max_lifetime: float,
) -> bool:
    """Wait until the tunnel is done; True when it idled or outlived its lifetime."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    seen = -1
    last_activity = started
    while not done.done():
        now = loop.time()
        activity = conn.reads + upstream.reads
        if activity != seen:
            seen, last_activity = activity, now
        left = min(started + max_lifetime - now, last_activity + idle_timeout - now)
        if left <= 0:
            reason = "its lifetime ended" if now - started >= max_lifetime else "idle"
            logger.info(f"websocket closed: {reason}", extra={"route": route})
            return True
        # Activity is seen when the loop looks: looking every quarter of the idle
        # timeout closes an idle tunnel within 1.25 times it.
        await asyncio.wait((done,), timeout=min(left, idle_timeout / 4))
    return False
