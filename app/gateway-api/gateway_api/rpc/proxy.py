"""The public listener's handler of gRPC calls (HTTP/2 streams with ``application/grpc``).

The same pipeline as an HTTP request (:mod:`gateway_api.proxy`): the route (by
``/package.Service/Method``), the token, tenant and RBAC of the method's route, rate
limits and quotas, the caller's region, balancing over the healthy instances of the
route's gRPC pool, and the gateway's signature in the call's metadata. The call then
streams both ways over a pooled HTTP/2 connection (:mod:`gateway_api.transport.h2_client`),
and the upstream's trailers (its ``grpc-status``) go back as they came.

A refusal anywhere is a trailers-only answer with the gRPC status
(:mod:`gateway_api.rpc.status`). ``grpc-timeout`` sets the call's deadline, capped by
the route's ``deadline``: past it the upstream stream is cancelled and the client gets
``DEADLINE_EXCEEDED``. Methods marked ``idempotent`` have their request (bounded by the
route's ``max_body``) held until it is complete, so that a call whose connection failed
before any answer, or that an instance refused with ``UNAVAILABLE``, is sent again to
another instance (within the retry budget). This module runs only for gRPC calls: the
HTTP/1.1 path does not pass through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from edgelib.identity import Identity
from edgelib.logs import reset_request_id, set_request_id
from edgelib.problems import Problem
from edgelib.signing import SignatureError
from edgelib.tasks import cancel
from gateway_api.accesslog import AccessLog
from gateway_api.gateway import MISSING
from gateway_api.proxy import GLOBAL, Seen
from gateway_api.rpc.status import (
    HTTP_EQUIVALENT,
    Code,
    GrpcRefusal,
    code_of_problem,
    code_of_upstream_status,
    format_timeout,
    parse_timeout,
    status_fields,
    trailers_only,
)
from gateway_api.stats import ANONYMOUS
from gateway_api.tracecontext import TraceContext, random_hex
from gateway_api.transport.exchange import ClientGone
from gateway_api.transport.h2_client import (
    H2Busy,
    H2Client,
    H2ConnectFailed,
    H2Stream,
    H2StreamError,
    header_value,
)

if TYPE_CHECKING:
    from gateway_api.gateway import Gateway
    from gateway_api.routing.table import GrpcRoute
    from gateway_api.transport.h2 import H2Exchange
    from gateway_api.upstreams.pools import Instance, Pool

logger = logging.getLogger("gateway.grpc")

#: Client metadata never passed upstream as sent: HTTP/2 framing, the gateway's own
#: forwarding fields, and what only the gateway may state (``x-edge-*``, below).
_NOT_COPIED = frozenset(
    {
        b"host",
        b"te",
        b"content-length",
        b"connection",
        b"keep-alive",
        b"upgrade",
        b"transfer-encoding",
        b"grpc-timeout",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-request-id",
        b"traceparent",
        b"forwarded",
        b"x-real-ip",
    }
)
#: Upstream response fields never passed on (framing; the request id is the gateway's).
_DROPPED = frozenset({b"content-length", b"connection", b"x-request-id", b"transfer-encoding"})


class _Call:
    """What one call needs once it is admitted."""

    __slots__ = ("deadline", "grpc", "hash_key", "headers", "identity", "pool", "request_id")

    def __init__(
        self,
        grpc: GrpcRoute,
        pool: Pool,
        headers: list[tuple[bytes, bytes]],
        identity: bytes,
        hash_key: str | None,
        deadline: float,
        request_id: bytes,
    ) -> None:
        self.grpc = grpc
        self.pool = pool
        self.headers = headers
        self.identity = identity
        self.hash_key = hash_key
        self.deadline = deadline
        self.request_id = request_id


class GrpcProxy:
    """The handler the public server's HTTP/2 connections run for every gRPC call."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.metrics = gateway.metrics
        settings = gateway.settings
        #: The gateway's HTTP/2 connections to the gRPC pools (closed by the gateway).
        self.client: H2Client = gateway.egress.grpc_client
        self.access_log = AccessLog(
            service=settings.service_name, instance=settings.instance_id, region=settings.region
        )
        self.expose_instance = settings.instance_header_exposed

    def close(self) -> None:
        """Write out what is still buffered (at shutdown)."""
        self.access_log.flush()

    async def __call__(self, exchange: Any) -> None:
        started = time.perf_counter()
        scope = exchange.scope
        metrics = self.metrics
        metrics.in_flight += 1
        request_id = _request_id(scope["headers"])
        trace = TraceContext.continued(scope["headers"])
        token = set_request_id(request_id)
        seen = Seen()
        code = Code.INTERNAL
        upstream: str | None = None
        try:
            try:
                code, upstream = await self._handle(exchange, request_id, trace, seen)
            except GrpcRefusal as refusal:
                code = refusal.code
                _refuse(exchange, refusal.code, refusal.message, request_id.encode())
            except Problem as problem:
                code = code_of_problem(problem)
                metrics.refused(problem.type_slug)
                _refuse(exchange, code, problem.detail or problem.title, request_id.encode())
            except ClientGone:
                code = Code.CANCELLED
            except asyncio.CancelledError:
                code = Code.CANCELLED
                raise
        finally:
            seconds = time.perf_counter() - started
            metrics.in_flight -= 1
            if seen.lease is not None:
                seen.lease.release()
            status = HTTP_EQUIVALENT.get(code, 500) if code != Code.OK else 200
            metrics.request(seen.route, "POST", status, seen.region, seconds)
            stats = self.gateway.stats
            if stats is not None:
                stats.request(
                    seen.tenant or ANONYMOUS,
                    seen.app or "",
                    seen.route,
                    status,
                    seconds,
                    started + seconds,
                )
            self.access_log.request(
                method="POST",
                path=scope["path"],
                status=status,
                upstream=upstream,
                duration_ms=round(seconds * 1000, 3),
                trace_id=trace.trace_id,
                span_id=trace.span_id,
                request_id=request_id,
                tenant=seen.tenant,
                app=seen.app,
            )
            reset_request_id(token)
            if exchange.response_done and not exchange.body_complete:
                # Answered before the client finished sending (a refusal, say): tell it
                # to stop (RST_STREAM NO_ERROR, RFC 9113 8.1), as gRPC servers do.
                exchange.stop_reading()

    async def _handle(
        self, exchange: H2Exchange, request_id: str, trace: TraceContext, seen: Seen
    ) -> tuple[Code, str | None]:
        gateway = self.gateway
        scope = exchange.scope
        path: str = scope["path"]
        grpc = gateway.routing.table.match_grpc(path)
        if grpc is None or scope["method"] != "POST":
            raise GrpcRefusal(Code.UNIMPLEMENTED, f"no gRPC route serves {path}")
        route = grpc.route
        seen.route = route.label
        raw_timeout = header_value(scope["headers"], b"grpc-timeout")
        timeout = grpc.deadline
        if raw_timeout is not None:
            asked = parse_timeout(raw_timeout)
            if asked is None:
                raise GrpcRefusal(Code.INVALID_ARGUMENT, "malformed grpc-timeout")
            timeout = min(timeout, asked)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                call = await self._admit(exchange, grpc, request_id, trace, seen, deadline)
                return await self._forward(exchange, call)
        except TimeoutError:
            if exchange.response_started:
                exchange.end(status_fields(Code.DEADLINE_EXCEEDED, "deadline exceeded"))
                return Code.DEADLINE_EXCEEDED, None
            raise GrpcRefusal(Code.DEADLINE_EXCEEDED, "deadline exceeded") from None

    async def _admit(
        self,
        exchange: H2Exchange,
        grpc: GrpcRoute,
        request_id: str,
        trace: TraceContext,
        seen: Seen,
        deadline: float,
    ) -> _Call:
        """The pipeline of :class:`gateway_api.proxy.Proxy`, for the call's route."""
        gateway = self.gateway
        scope = exchange.scope
        route = grpc.route
        identity: Identity | None = None
        encoded = b""
        if route.access != "public":
            authn = gateway.security.authn
            known = authn.known(scope["headers"]) if authn is not None else None
            if known is None:
                identity = await gateway.authenticate(scope)
                encoded = identity.encode().encode()
            else:
                identity, encoded = known
            seen.tenant = identity.tenant
            seen.app = identity.app or None
            gateway.authorize(identity, route.permission)
        client = scope.get("client")
        client_ip: str | None = client[0] if client else None
        limit = route.rate_limit
        if limit is not None:
            caller = identity.user_id if identity is not None and limit.by == "user" else None
            gateway.security.limiter.check(limit, caller or client_ip or "-", time.time())
        quotas = gateway.security.quotas
        found = quotas.applicable(route, identity) if quotas.armed else None
        seen.lease = await quotas.admit(found) if found is not None else None
        region = gateway.cached_region(route, identity)
        if region is MISSING:
            region = await gateway.region_for(route, identity)
        pool = gateway.upstreams.pool(grpc.pool, region)
        if pool is None:
            raise GrpcRefusal(Code.UNAVAILABLE, f"{grpc.pool} has no instances in {region}")
        seen.region = GLOBAL if region is None else region
        headers = _metadata(scope, request_id, trace, client_ip, strip_token=bool(encoded))
        hash_key = identity.user_id if identity is not None else client_ip
        return _Call(grpc, pool, headers, encoded, hash_key, deadline, request_id.encode())

    async def _forward(self, exchange: H2Exchange, call: _Call) -> tuple[Code, str | None]:
        """Send the call to an instance (another one on ``UNAVAILABLE`` when idempotent)."""
        gateway = self.gateway
        grpc = call.grpc
        budget = gateway.egress.retry_budget
        budget.on_request()
        buffered: bytes | None = None
        if grpc.idempotent:
            buffered = await _whole_request(exchange, grpc.route.max_body)
        tried: set[str] = set()
        attempts = 1 + (grpc.route.retries if grpc.idempotent else 0)
        last = "no healthy instance"
        for attempt in range(attempts):
            if attempt and not budget.try_spend():
                break
            instance = call.pool.choose(grpc.route.balancing, call.hash_key, tried or None)
            if instance is None:
                break
            tried.add(instance.url)
            outcome = await self._attempt(exchange, call, instance, buffered)
            if isinstance(outcome, str):
                last = outcome
                continue
            return outcome, instance.spec.id
        raise GrpcRefusal(Code.UNAVAILABLE, f"{grpc.route.service}: {last}")

    async def _attempt(
        self, exchange: H2Exchange, call: _Call, instance: Instance, buffered: bytes | None
    ) -> Code | str:
        """One try: the call's status once relayed, or why it may be tried elsewhere."""
        loop = asyncio.get_running_loop()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", exchange.scope["raw_path"]),
            (b":authority", instance.host),
            *call.headers,
            (b"grpc-timeout", format_timeout(call.deadline - loop.time())),
        ]
        if call.identity:
            headers += self._signature(exchange.scope["raw_path"], call)
        instance.in_flight += 1
        stream: H2Stream | None = None
        pump: asyncio.Task[None] | None = None
        try:
            try:
                stream = await self.client.open(
                    instance.url,
                    headers,
                    connect_timeout=call.grpc.route.connect_timeout,
                    end_stream=buffered == b"",
                )
            except H2ConnectFailed as exc:
                _failed(instance, f"connect: {exc}")
                return f"{instance.spec.id} refused the connection"
            except H2Busy as exc:
                return f"{instance.spec.id}: {exc}"
            if buffered:
                await stream.send(buffered, end=True)
            elif buffered is None:
                pump = asyncio.create_task(_pump(exchange, stream))
            try:
                head = await stream.response()
            except H2StreamError as exc:
                _failed(instance, str(exc))
                if buffered is not None:
                    return f"{instance.spec.id} failed before answering"
                raise GrpcRefusal(Code.UNAVAILABLE, f"{instance.spec.id} failed") from exc
            code = self._relay_head(exchange, call, instance, stream, head)
            if code is not None:
                if code == Code.UNAVAILABLE and buffered is not None:
                    return f"{instance.spec.id} answered UNAVAILABLE"
                _trailers_only(exchange, head, call.request_id)
                return code
            return await self._relay(exchange, instance, stream)
        finally:
            instance.in_flight -= 1
            await cancel(pump)
            if stream is not None:
                stream.finish()

    def _relay_head(
        self,
        exchange: H2Exchange,
        call: _Call,
        instance: Instance,
        stream: H2Stream,
        head: list[tuple[bytes, bytes]],
    ) -> Code | None:
        """A trailers-only answer's status (not yet relayed), or None once the head went out."""
        status = header_value(head, b":status") or b""
        if status != b"200":
            _failed(instance, f"HTTP {status.decode(errors='replace')}")
            code = code_of_upstream_status(int(status) if status.isdigit() else 0)
            raise GrpcRefusal(code, f"{instance.spec.id} answered HTTP {status.decode()}")
        grpc_status = header_value(head, b"grpc-status")
        if grpc_status is not None and stream.ended:
            code = Code(int(grpc_status)) if _known_code(grpc_status) else Code.UNKNOWN
            if code == Code.UNAVAILABLE:
                _failed(instance, "UNAVAILABLE")
            else:
                instance.breaker.on_success()
                instance.served += 1
            return code
        instance.breaker.on_success()
        exchange.start_response(
            200, self._response_fields(head, call.request_id, instance), length=None
        )
        return None

    async def _relay(self, exchange: H2Exchange, instance: Instance, stream: H2Stream) -> Code:
        """Messages, then the upstream's trailers, to the client."""
        try:
            while data := await stream.read():
                exchange.write(data)
                await exchange.drain()
        except H2StreamError as exc:
            _failed(instance, str(exc))
            exchange.end(status_fields(Code.UNAVAILABLE, "the upstream stream broke"))
            return Code.UNAVAILABLE
        trailers = [(n, v) for n, v in stream.trailers or [] if not n.startswith(b":")]
        code_value = header_value(trailers, b"grpc-status")
        if code_value is None:
            trailers = status_fields(Code.INTERNAL, "the upstream ended without a status")
            code_value = b"13"
        exchange.end(trailers)
        instance.served += 1
        return Code(int(code_value)) if _known_code(code_value) else Code.UNKNOWN

    def _response_fields(
        self, head: list[tuple[bytes, bytes]], request_id: bytes, instance: Instance
    ) -> list[tuple[bytes, bytes]]:
        fields = [
            (n, v)
            for n, v in head
            if not n.startswith(b":")
            and n not in _DROPPED
            and (self.expose_instance or n != b"x-edge-instance")
        ]
        fields.append((b"x-request-id", request_id))
        return fields

    def _signature(self, path: bytes, call: _Call) -> list[tuple[bytes, bytes]]:
        """The gateway's signature as metadata: the same fields as on an HTTP request,
        over ``POST <path>`` to the route's service, the messages unsigned (streamed)."""
        signer = self.gateway.security.forward_signer
        try:
            lines = signer.header_lines("POST", path, call.grpc.route.service, call.identity)
        except SignatureError as exc:
            logger.error("cannot sign for %s: %s", call.grpc.route.service, exc)
            raise GrpcRefusal(Code.INTERNAL, "the gateway cannot sign for this service") from exc
        fields = []
        for line in lines.split(b"\r\n"):
            name, _, value = line.partition(b": ")
            if name:
                fields.append((name, value))
        return fields


async def _whole_request(exchange: H2Exchange, limit: int) -> bytes:
    """The client's whole request stream (an idempotent call's, to replay), at most ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await exchange.receive():
        size += len(chunk)
        if size > limit:
            raise GrpcRefusal(Code.RESOURCE_EXHAUSTED, f"the request exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _pump(exchange: H2Exchange, stream: H2Stream) -> None:
    """The client's messages to the upstream as they come (both ways at once).

    The client leaving or the upstream stream ending are how a pump ends, not failures:
    the relay beside it sees and answers them.
    """
    with contextlib.suppress(ClientGone, H2StreamError):
        while chunk := await exchange.receive():
            await stream.send(chunk)
        stream.end()


def _trailers_only(
    exchange: H2Exchange, head: list[tuple[bytes, bytes]], request_id: bytes
) -> None:
    fields = [(n, v) for n, v in head if not n.startswith(b":") and n not in _DROPPED]
    fields.append((b"x-request-id", request_id))
    exchange.start_response(200, fields, length=None, body_follows=False)


def _refuse(exchange: H2Exchange, code: Code, message: str, request_id: bytes) -> None:
    if exchange.response_done or exchange.reset:
        return
    if exchange.response_started:
        exchange.end(status_fields(code, message))
    else:
        exchange.start_response(
            200, trailers_only(code, message, request_id), length=None, body_follows=False
        )


def _metadata(
    scope: dict[str, Any],
    request_id: str,
    trace: TraceContext,
    client_ip: str | None,
    *,
    strip_token: bool,
) -> list[tuple[bytes, bytes]]:
    """The client's metadata minus framing and internal fields, plus the forwarding ones."""
    fields: list[tuple[bytes, bytes]] = []
    host = b""
    forwarded_for = b""
    for name, value in scope["headers"]:
        if name in _NOT_COPIED:
            if name == b"host":
                host = value
            elif name == b"x-forwarded-for":
                forwarded_for = value
            continue
        if name.startswith(b"x-edge-") or (name == b"authorization" and strip_token):
            continue
        fields.append((name, value))
    ip = (client_ip or "").encode()
    fields.append((b"te", b"trailers"))
    fields.append((b"x-forwarded-for", forwarded_for + b", " + ip if forwarded_for else ip))
    fields.append((b"x-forwarded-proto", str(scope.get("scheme", "http")).encode()))
    if host:
        fields.append((b"x-forwarded-host", host))
    fields.append((b"x-request-id", request_id.encode()))
    fields.append((b"traceparent", trace.traceparent()))
    return fields


def _known_code(value: bytes) -> bool:
    return value.isdigit() and int(value) in Code._value2member_map_


def _failed(instance: Instance, reason: str) -> None:
    instance.errors += 1
    instance.last_error = reason
    instance.breaker.on_failure(time.monotonic())


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    value = header_value(headers, b"x-request-id")
    if value is not None and 0 < len(value) <= 128 and value.isascii():
        return value.decode()
    return random_hex(16)
