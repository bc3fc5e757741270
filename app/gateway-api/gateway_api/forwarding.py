"""Forwarding one HTTP request to an upstream pool: retries, timeouts, breakers, streaming."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING, Any, Final

from edgelib.problems import GatewayTimeout, PayloadTooLarge, Problem, ServiceUnavailable
from edgelib.signing import SignatureError
from gateway_api.problems import BadGateway, UpstreamUnreachable
from gateway_api.transport.exchange import ClientGone, Exchange
from gateway_api.transport.http_client import (
    ConnectFailed,
    HttpClient,
    Response,
    UpstreamConnection,
    UpstreamError,
    UpstreamTimeout,
    request_head,
)

if TYPE_CHECKING:
    from gateway_api.metrics import GatewayMetrics
    from gateway_api.routing.table import Route
    from gateway_api.security.signing import ForwardSigner
    from gateway_api.upstreams.pools import Instance, Pool, RetryBudget

logger = logging.getLogger("gateway.forward")

#: ``time.monotonic`` in a C static of the compiled module: a global name or a module
#: attribute costs a dict lookup on every call, and the path makes several per request.
#: (The constants below are ``Final`` for the same reason.)
monotonic: Final = time.monotonic
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES: Final = frozenset({502, 503, 504})
#: Idempotent bodies up to this size are buffered so that a retry can resend them.
REPLAYABLE_BODY: Final = 64 * 1024
#: Responses with a Content-Length up to this size are read whole before relaying.
WHOLE_RESPONSE: Final = 64 * 1024
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})

HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
#: Never copied from an upstream's answer: hop-by-hop, framing (set by the gateway's
#: server), and the request id (the gateway's own is sent).
RESPONSE_DROPPED: Final = HOP_BY_HOP | {b"content-length", b"x-request-id"}
#: The same, and which instance answered (``GATEWAY_EXPOSE_INSTANCE`` off).
RESPONSE_DROPPED_PRIVATE: Final = RESPONSE_DROPPED | {b"x-edge-instance"}


class RequestBody:
    """The client's body: streamed once, or buffered when small enough to replay."""

    def __init__(self, exchange: Exchange, limit: int, length: int | None) -> None:
        self._exchange = exchange
        self.limit = limit
        self.length = length
        self.buffered: bytes | None = None
        self.started = False
        self.received = 0

    async def buffer(self) -> None:
        chunks = []
        while chunk := await self.next_chunk():
            chunks.append(chunk)
        self.buffered = b"".join(chunks)

    async def next_chunk(self) -> bytes:
        """The next piece of the body, ``b""`` at its end; refuses one past the limit."""
        self.started = True
        chunk = await self._exchange.receive()
        self.received += len(chunk)
        if self.received > self.limit:
            raise PayloadTooLarge(f"the body exceeds this route's {self.limit} bytes")
        return chunk

    @property
    def replayable(self) -> bool:
        return self.buffered is not None or not self.started


def _target(scope: Any) -> bytes:
    target: bytes = scope["raw_path"]
    if scope["query_string"]:
        target = target + b"?" + scope["query_string"]
    return target


def _signature(
    signer: ForwardSigner,
    method: str,
    target: bytes,
    service: str,
    identity: bytes,
    digest: bytes = b"",
) -> bytes:
    try:
        return signer.header_lines(method, target, service, identity, digest)
    except SignatureError as exc:
        # A keyring without this destination is a deployment error, not the client's.
        raise ServiceUnavailable(f"the gateway holds no key for {service}") from exc


def sign_once(signer: ForwardSigner, scope: Any, service: str, identity: bytes) -> bytes:
    """Signature lines for a request sent once (a WebSocket upgrade)."""
    return _signature(signer, scope["method"], _target(scope), service, identity)


async def forward(
    exchange: Exchange,
    *,
    client: HttpClient,
    pool: Pool,
    route: Route,
    headers: bytes,
    body: RequestBody | None,
    hash_key: str | None,
    budget: RetryBudget,
    request_id: bytes,
    idempotency_key: bool = False,
    response_dropped: frozenset[bytes] = RESPONSE_DROPPED_PRIVATE,
    signer: ForwardSigner | None = None,
    identity: bytes = b"",
    metrics: GatewayMetrics | None = None,
) -> tuple[int, str]:
    """Send the request to an instance of ``pool``; stream its answer to ``exchange``.

    ``headers`` are the outgoing header lines (``name: value\\r\\n`` each), without
    ``host`` or framing. Returns (status, instance id). Raises a Problem when no answer
    can be given (504 on timeout, 502 on a broken upstream, 503 when nothing is
    eligible), only before any byte of a response has been sent. With ``signer``, each
    attempt is signed (with ``identity``) afresh: its own nonce, so a retry on another
    instance is not refused as a replay. With ``metrics``, every attempt is counted
    under the pool's label, by outcome, with its duration.
    """
    scope = exchange.scope
    method: str = scope["method"]
    target = _target(scope)
    idempotent = idempotency_key or method in IDEMPOTENT_METHODS
    digest = b"" if body is None else await _prepare_body(body, signer, idempotent)
    now = monotonic()
    deadline = now + route.total_timeout
    budget.on_request()
    tried: set[str] | None = None
    last_problem: Problem | None = None
    for attempt in range(1 + route.retries):
        if attempt:
            if not _may_retry(body, budget):
                break
            if metrics is not None:
                metrics.retry(pool.label)
        instance = pool.choose(route.balancing, hash_key, tried)
        if instance is None:
            break
        if tried is None:
            tried = set()
        tried.add(instance.url)
        remaining = deadline - monotonic()
        if remaining <= 0:
            last_problem = GatewayTimeout(f"no answer within {route.total_timeout}s")
            break
        if signer is not None:
            signed = headers + _signature(signer, method, target, pool.service, identity, digest)
        else:
            signed = headers
        outcome = await _attempt(
            exchange, client, instance, route, method, target, signed, body, remaining,
            request_id, idempotent, response_dropped, metrics, pool.label,
        )  # fmt: skip
        if isinstance(outcome, int):
            return outcome, instance.spec.id
        last_problem = outcome
        if not (idempotent or isinstance(outcome, UpstreamUnreachable)):
            break
    if last_problem is None:
        raise ServiceUnavailable(
            f"no healthy instance of {pool.service} can take this request now",
            headers={"Retry-After": "1"},
        )
    raise last_problem


async def _prepare_body(body: RequestBody, signer: ForwardSigner | None, idempotent: bool) -> bytes:
    """Buffer a body that is signed or may be resent; the SHA-256 to sign (or ``b""``)."""
    if signer is not None and signer.sign_bodies:
        await body.buffer()
        return hashlib.sha256(body.buffered or b"").hexdigest().encode()
    if idempotent and (body.length or 0) <= REPLAYABLE_BODY:
        await body.buffer()
    return b""


def _may_retry(body: RequestBody | None, budget: RetryBudget) -> bool:
    """Whether another attempt may go: the body can be resent, and the budget allows it."""
    can_resend = body is None or body.replayable
    return can_resend and budget.try_spend()


async def _attempt(
    exchange: Exchange,
    client: HttpClient,
    instance: Instance,
    route: Route,
    method: str,
    target: bytes,
    headers: bytes,
    body: RequestBody | None,
    remaining: float,
    request_id: bytes,
    idempotent: bool,
    response_dropped: frozenset[bytes],
    metrics: GatewayMetrics | None,
    upstream: str,
) -> int | Problem:
    """One try on one instance: the status it answered, or the problem it caused.

    Its outcome for the metrics: ``ok`` (an answer), ``bad_status`` (502/503/504
    counted against the instance), ``connect_error``, ``timeout``, ``upstream_error``
    (the connection broke), ``aborted`` (the client went, or its body was too large).
    """
    url = instance.url
    origin = client.pool(url)
    head = request_head(method, target, instance.host, headers)
    started = monotonic()
    instance.in_flight += 1
    result = "aborted"
    try:
        for fresh_retry in (False, True):
            try:
                pooled = origin.take()
                reused = pooled is not None
                conn = pooled or await origin.connect(min(route.connect_timeout, remaining))
            except ConnectFailed as failure:
                _failed(instance, f"connect: {failure.__cause__.__class__.__name__}")
                result = "connect_error"
                return UpstreamUnreachable(f"{instance.spec.service} refused the connection")
            try:
                resp = await _send(conn, method, head, body, route, remaining, started)
                length = resp.length
                if length and length <= WHOLE_RESPONSE and method != "HEAD" and not conn.done:
                    # A small answer is read whole before any of it goes out, so an
                    # upstream dying between head and body is a failed attempt (retried
                    # when idempotent), not a truncated response.
                    left = remaining - (monotonic() - started)
                    await conn.complete(min(route.read_timeout, left))
                break
            except UpstreamTimeout:
                conn.abort()
                _failed(instance, "timeout")
                result = "timeout"
                return GatewayTimeout(f"{instance.spec.service} did not answer in time")
            except UpstreamError as exc:
                conn.abort()
                if _send_again_fresh(exc, conn, body, reused and not fresh_retry and idempotent):
                    continue
                _failed(instance, type(exc).__name__)
                result = "upstream_error"
                return BadGateway(f"{instance.spec.service} failed to answer")
            except BaseException:
                conn.abort()
                raise
        status = resp.status
        if status in RETRY_STATUSES and not (status == 503 and _retry_after(resp.headers)):
            instance.breaker.on_failure(monotonic())
            instance.errors += 1
            result = "bad_status"
        elif instance.breaker.failures or instance.breaker.state != "closed":
            # A 503 with Retry-After is the instance answering for a dependency that is
            # away (its database, say): every instance would say the same, and opening
            # the breaker would only delay the recovery by its cool-down (up to 30 s).
            instance.breaker.on_success()
        await _relay(exchange, conn, resp, method, route, request_id, response_dropped)
        origin.release(conn)
        instance.served += 1
        if result == "aborted":
            result = "ok"
        return status
    finally:
        instance.in_flight -= 1
        if metrics is not None:
            metrics.attempt(upstream, result, monotonic() - started)


def _send_again_fresh(
    exc: UpstreamError, conn: UpstreamConnection, body: RequestBody | None, may: bool
) -> bool:
    """After an exchange broke (a rare branch, kept out of :func:`_attempt`): whether to
    send it again on a fresh connection; raises :class:`PayloadTooLarge` when what broke
    it was the client's body exceeding the route's limit.

    A kept-alive connection the upstream closed just as it was reused answered nothing,
    so an idempotent request (``may``) whose body can be resent goes again, fresh.
    """
    if body is not None and body.received > body.limit:
        raise PayloadTooLarge(f"the body exceeds this route's {body.limit} bytes") from exc
    replayable = body is None or body.buffered is not None
    return may and replayable and not conn.received_any


async def _send(
    conn: UpstreamConnection,
    method: str,
    head: bytes,
    body: RequestBody | None,
    route: Route,
    remaining: float,
    started: float,
) -> Response:
    """Write the request (head, framing, body) and wait for the response head."""
    head_request = method == "HEAD"
    if body is None:
        framing = b"content-length: 0\r\n\r\n" if method in _BODY_METHODS else b"\r\n"
        conn.start(head + framing, head_request=head_request)
    elif body.buffered is not None:
        framing = b"content-length: %d\r\n\r\n" % len(body.buffered)
        conn.start(head + framing + body.buffered, head_request=False)
    elif body.length is not None:
        conn.start(head + b"content-length: %d\r\n\r\n" % body.length, head_request=False)
        while chunk := await body.next_chunk():
            conn.write(chunk)
            await _drain(conn, remaining, started)
    else:
        conn.start(head + b"transfer-encoding: chunked\r\n\r\n", head_request=False)
        while chunk := await body.next_chunk():
            conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            await _drain(conn, remaining, started)
        conn.write(b"0\r\n\r\n")
    left = remaining - (monotonic() - started)
    if left <= 0:
        raise UpstreamTimeout("no time left for the upstream to answer")
    return await conn.response(min(route.read_timeout, left))


async def _drain(conn: UpstreamConnection, remaining: float, started: float) -> None:
    if conn.closed:
        raise UpstreamError("upstream closed the connection while the body was sent")
    left = remaining - (monotonic() - started)
    if left <= 0:
        raise UpstreamTimeout("the upstream did not take the body in time")
    await conn.drain()


async def _relay(
    exchange: Exchange,
    conn: UpstreamConnection,
    resp: Response,
    method: str,
    route: Route,
    request_id: bytes,
    response_dropped: frozenset[bytes],
) -> None:
    """Stream the upstream's answer to the client; a failure midway drops the client."""
    status = resp.status
    headers = response_headers(resp.headers, request_id, response_dropped)
    if method == "HEAD" or status in (204, 304):
        exchange.start_response(status, headers, length=resp.length, body_follows=False)
        exchange.end()
        return
    # A small answer usually comes in one piece: then head and body leave in one write.
    exchange.start_response(status, headers, length=resp.length, flush=not conn.body_ready)
    rest = conn.take_rest()
    if rest is not None:  # all of it is here: no reads to wait for
        exchange.write(rest)
        exchange.end()
        return
    read_timeout = route.read_timeout
    try:
        while True:
            chunk = await conn.chunk(read_timeout)
            if not chunk:
                break
            exchange.write(chunk)
            await exchange.drain()
    except (UpstreamError, ClientGone) as exc:
        conn.abort()
        exchange.abort()
        logger.warning("response cut short", extra={"status": status, "error": type(exc).__name__})
        return
    except BaseException:
        conn.abort()
        raise
    exchange.end()


def _retry_after(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, _ in headers:
        if name == b"retry-after":
            return True
    return False


def _failed(instance: Instance, reason: str) -> None:
    instance.errors += 1
    instance.last_error = reason
    instance.breaker.on_failure(monotonic())


def response_headers(
    raw: list[tuple[bytes, bytes]],
    request_id: bytes,
    response_dropped: frozenset[bytes] = RESPONSE_DROPPED_PRIVATE,
) -> list[tuple[bytes, bytes]]:
    """Upstream headers minus hop-by-hop ones (and those Connection names), plus the request id."""
    dropped: frozenset[bytes] | set[bytes] = response_dropped
    for name, value in raw:
        if name == b"connection":
            dropped = set(dropped)
            dropped.update(t.strip().lower() for t in value.split(b","))
    headers = [(name, value) for name, value in raw if name not in dropped]
    headers.append((b"x-request-id", request_id))
    return headers
