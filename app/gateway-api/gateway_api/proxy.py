"""The public listener's request handler: route, authenticate, authorize, forward.

It runs on the gateway's own HTTP/1.1 server (:mod:`gateway_api.transport.server`), works on
the raw request head, streams bodies both ways through the forwarding core
(:mod:`gateway_api.forwarding`), and answers every refusal with problem+json.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Final

from edgelib.identity import Identity
from edgelib.logs import reset_request_id, set_request_id
from edgelib.problems import (
    PROBLEM_MEDIA_TYPE,
    PayloadTooLarge,
    Problem,
    ServiceUnavailable,
    problem_body,
)
from gateway_api.accesslog import AccessLog
from gateway_api.forwarding import HOP_BY_HOP, RequestBody, forward, sign_once
from gateway_api.gateway import MISSING
from gateway_api.problems import (
    BadPath,
    BadRequestBody,
    MethodRefused,
    NotFound,
    UpgradeRefused,
)
from gateway_api.routing.table import MethodNotAllowed, Route, UnsafePath, check_path
from gateway_api.stats import ANONYMOUS
from gateway_api.tracecontext import TraceContext, random_hex
from gateway_api.transport.exchange import ClientGone, Exchange
from gateway_api.transport.websocket import tunnel_websocket

if TYPE_CHECKING:
    from gateway_api.gateway import Gateway
    from gateway_api.security.quotas import Lease
    from gateway_api.security.signing import ForwardSigner
    from gateway_api.upstreams.pools import Pool

Scope = MutableMapping[str, Any]

#: Functions called on every request, in C statics of the compiled module (a global name
#: or a module attribute costs a dict lookup per call); constants are ``Final`` too.
perf_counter: Final = time.perf_counter
_set_request_id: Final = set_request_id
_reset_request_id: Final = reset_request_id

#: Request headers never copied upstream as the client sent them.
_NOT_COPIED: Final = HOP_BY_HOP | {
    b"host",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-request-id",
    b"traceparent",
    b"content-length",
    b"expect",
    # Client claims about the path a request took: the gateway states its own.
    b"forwarded",
    b"x-real-ip",
}
_HEALTH_BODY: Final = b'{"status":"ok"}'
#: The route and region labels of a request refused before they were known (``Final``:
#: a C static in the compiled module, not a dict lookup per request).
NONE: Final = "none"
#: The region label of a route to a global service.
GLOBAL: Final = "global"
_JSON: Final = [(b"content-type", b"application/json")]


class Seen:
    """What a request's metrics labels need to know of how far it got."""

    def __init__(self) -> None:
        self.route = NONE
        self.region = NONE
        #: The caller's tenant and app (statistics, access log); None: no caller.
        self.tenant: str | None = None
        self.app: str | None = None
        #: Concurrency quota leases to give back when the request ends.
        self.lease: Lease | None = None


class Proxy:
    """The handler the public server runs for every request."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.metrics = gateway.metrics
        self.stats = gateway.stats
        settings = gateway.settings
        self.access_log = AccessLog(
            service=settings.service_name, instance=settings.instance_id, region=settings.region
        )

    def close(self) -> None:
        """Write out what is still buffered (at shutdown)."""
        self.access_log.flush()

    def bad_request(self, status: int, detail: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The server's own refusals (malformed HTTP), counted, as problem+json."""
        self.metrics.refused_by_server(status)
        return bad_request(status, detail)

    async def __call__(self, exchange: Exchange) -> None:
        scope = exchange.scope
        path: str = scope["path"]
        if path == "/healthz":
            exchange.respond(200, _JSON, _HEALTH_BODY)
            return
        started = perf_counter()
        metrics = self.metrics
        metrics.in_flight += 1
        request_id = _request_id(scope)
        trace = TraceContext.continued(scope["headers"])
        token = _set_request_id(request_id)
        if TraceContext.record_spans:
            trace.attach()
        status = 500
        upstream: str | None = None
        seen = Seen()
        try:
            try:
                status, upstream = await self._handle(exchange, request_id, trace, seen)
            except Problem as exc:
                status = exc.status_code
                metrics.refused(exc.type_slug)
                if exchange.response_started:
                    exchange.abort()
                else:
                    trace.attach()  # the problem document carries the trace id
                    _problem(exchange, exc, request_id)
            except ClientGone:
                status = 499
            except asyncio.CancelledError:
                status = 499
                raise
        finally:
            trace.detach()
            seconds = perf_counter() - started
            metrics.in_flight -= 1
            if seen.lease is not None:
                seen.lease.release()
            method: str = scope["method"]
            metrics.request(seen.route, method, status, seen.region, seconds)
            stats = self.stats
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
                method=method,
                path=path,
                status=status,
                upstream=upstream,
                duration_ms=round(seconds * 1000, 3),
                trace_id=trace.trace_id,
                span_id=trace.span_id,
                request_id=request_id,
                tenant=seen.tenant,
                app=seen.app,
            )
            _reset_request_id(token)

    async def _handle(
        self, exchange: Exchange, request_id: str, trace: TraceContext, seen: Seen
    ) -> tuple[int, str | None]:
        gateway = self.gateway
        scope = exchange.scope
        path: str = scope["path"]
        method: str = scope["method"]
        upgrade = exchange.upgrade
        if upgrade is not None and (upgrade != b"websocket" or method != "GET"):
            raise UpgradeRefused("only WebSocket upgrades, with GET, are supported")
        raw_path: bytes = scope["raw_path"]
        if (
            raw_path.find(b"%") >= 0  # not `in`: CPython 3.11 tries it as an int first
            or "/." in path
            or "//" in path
            or "\\" in path
            or "\x00" in path
            or path[:1] != "/"
        ):
            _check_path(path, raw_path)  # only for paths that may be unsafe
        try:
            route = gateway.routing.table.match(method, path)
        except MethodNotAllowed as exc:
            raise MethodRefused(
                f"{method} is not allowed on {path}",
                headers={"Allow": ", ".join(sorted(exc.allowed))},
            ) from exc
        if route is None:
            raise NotFound(f"no route serves {path}")
        seen.route = route.label or route.name
        if upgrade is not None and not route.websocket:
            raise UpgradeRefused(f"{route.name} takes no WebSocket upgrades")
        # Known callers, cached regions and cached decisions cost no I/O and log
        # nothing; the trace context is made current only when something may call
        # out or log (a first token, a region to look up).
        identity: Identity | None = None
        encoded_identity = b""
        if route.access != "public":
            authn = gateway.security.authn
            known = authn.known(scope["headers"]) if authn is not None else None
            if known is None:
                trace.attach()
                identity = await gateway.authenticate(scope)
                encoded_identity = identity.encode().encode()
            else:
                identity, encoded_identity = known
            seen.tenant = identity.tenant
            seen.app = identity.app or None
            gateway.authorize(identity, route.permission)
        client_ip = _client_ip(scope)
        limit = route.rate_limit
        if limit is not None:
            caller = identity.user_id if identity is not None and limit.by == "user" else None
            gateway.security.limiter.check(limit, caller or client_ip or "-", time.time())
        # Quotas (security/quotas.py): no coroutine, and no I/O, for a caller without one.
        quotas = gateway.security.quotas
        found = quotas.applicable(route, identity) if quotas.armed else None
        seen.lease = await quotas.admit(found) if found is not None else None
        region = gateway.cached_region(route, identity)
        if region is MISSING:
            trace.attach()
            region = await gateway.region_for(route, identity)
        pool = gateway.upstreams.pool(route.service, region)
        if pool is None:
            raise ServiceUnavailable(
                f"{route.service} has no instances in region {region}",
                headers={"Retry-After": "5"},
            )
        seen.region = GLOBAL if region is None else region  # a topology region: bounded
        hash_key = identity.user_id if identity is not None else client_ip
        egress = gateway.egress
        headers, idempotency_key = self._outgoing_headers(
            scope, request_id, encoded_identity, trace, client_ip, exchange.upgrade is not None
        )
        signer = gateway.security.forward_signer if encoded_identity else None
        if exchange.upgrade is not None:
            self.metrics.tunnels += 1
            try:
                return await self._tunnel(
                    exchange, route, pool, headers, hash_key, signer, identity, encoded_identity
                )
            finally:
                self.metrics.tunnels -= 1
        return await forward(
            exchange,
            client=egress.client,
            pool=pool,
            route=route,
            headers=headers,
            body=_request_body(exchange, route) if exchange.has_body else None,
            hash_key=hash_key,
            budget=egress.retry_budget,
            request_id=request_id.encode(),
            idempotency_key=idempotency_key,
            response_dropped=egress.response_dropped,
            signer=signer,
            identity=encoded_identity,
            metrics=self.metrics,
        )

    async def _tunnel(
        self,
        exchange: Exchange,
        route: Route,
        pool: Pool,
        headers: bytes,
        hash_key: str | None,
        signer: ForwardSigner | None,
        identity: Identity | None,
        encoded_identity: bytes,
    ) -> tuple[int, str | None]:
        """A WebSocket upgrade: signed once, then spliced to an upstream instance."""
        gateway = self.gateway
        if signer is not None:
            headers += sign_once(signer, exchange.scope, pool.service, encoded_identity)
        authn = gateway.security.authn
        return await tunnel_websocket(
            exchange,
            client=gateway.egress.client,
            pool=pool,
            route=route,
            headers=headers,
            hash_key=hash_key,
            session_id=identity.session_id if identity is not None else None,
            revoked=authn.revoked if authn is not None else None,
            idle_timeout=gateway.settings.websocket_idle_timeout,
            max_lifetime=gateway.settings.websocket_max_lifetime,
            response_dropped=gateway.egress.response_dropped,
        )

    def _outgoing_headers(
        self,
        scope: Scope,
        request_id: str,
        identity: bytes,
        trace: TraceContext,
        client_ip: str | None,
        upgrade: bool,
    ) -> tuple[bytes, bool]:
        """Client headers minus hop-by-hop and internal ones, plus forwarding headers.

        ``identity`` is the caller's encoded identity (empty on public routes). Returns
        the header lines and whether the client sent an ``Idempotency-Key``.
        """
        raw: list[tuple[bytes, bytes]] = scope["headers"]
        named: set[bytes] | None = None
        for name, value in raw:
            if name == b"connection":
                named = {t.strip().lower() for t in value.split(b",")}
        parts: list[bytes] = []
        host = b""
        forwarded_for = b""
        idempotency_key = False
        for name, value in raw:
            if name in _NOT_COPIED:
                if name == b"host":
                    host = value
                elif name == b"x-forwarded-for":
                    forwarded_for = value
                continue
            if name.startswith(b"x-edge-") or (named is not None and name in named):
                continue
            if name == b"authorization" and identity:
                # The gateway consumed the token: services get the signed identity,
                # and a bearer token never reaches their logs (Envoy's jwt_authn does
                # the same by default).
                continue
            if name == b"idempotency-key":
                idempotency_key = True
            parts.append(name + b": " + value + b"\r\n")
        ip = (client_ip or "").encode()
        parts.append(
            b"x-forwarded-for: " + (forwarded_for + b", " + ip if forwarded_for else ip) + b"\r\n"
        )
        parts.append(b"x-forwarded-proto: " + _scheme(scope).encode() + b"\r\n")
        if host:
            parts.append(b"x-forwarded-host: " + host + b"\r\n")
        parts.append(b"x-request-id: " + request_id.encode() + b"\r\n")
        parts.append(b"traceparent: " + trace.traceparent() + b"\r\n")
        if upgrade:
            parts.append(b"connection: upgrade\r\nupgrade: websocket\r\n")
        # The signature (with the identity) is added per attempt by forward(): each
        # try carries its own nonce, so a retry on another instance is not a replay.
        return b"".join(parts), idempotency_key


def _check_path(path: str, raw_path: bytes) -> None:
    """Refuse a path that is unsafe to route (traversal, encoded separators, NUL)."""
    try:
        check_path(path, raw_path)
    except UnsafePath as unsafe:
        raise BadPath(str(unsafe)) from unsafe


def _request_body(exchange: Exchange, route: Route) -> RequestBody | None:
    """The body to forward, or None; refuses ambiguous or oversized bodies up front."""
    length: int | None = None
    chunked = False
    lengths = 0
    for name, value in exchange.scope["headers"]:
        if name == b"content-length":
            lengths += 1
            if not value.strip().isdigit():
                raise BadRequestBody("Content-Length is not a number")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True
    if lengths > 1 or (chunked and length is not None):
        # Conflicting framing is how request smuggling starts: refuse it.
        raise BadRequestBody("conflicting Content-Length and Transfer-Encoding")
    if length is not None and length > route.max_body:
        raise PayloadTooLarge(f"the body exceeds this route's {route.max_body} bytes")
    if not chunked and not length:
        return None
    return RequestBody(exchange, route.max_body, length)


def _client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def _scheme(scope: Scope) -> str:
    scheme: str = scope.get("scheme", "http")
    return scheme


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and 0 < len(value) <= 128 and value.isascii():
            return str(value.decode())
    return random_hex(16)


def _problem(exchange: Exchange, exc: Problem, request_id: str) -> None:
    body = problem_body(exc.status_code, exc.type_slug, exc.title, exc.detail, **exc.extensions)
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"x-request-id", request_id.encode()),
        *((k.lower().encode(), v.encode()) for k, v in exc.headers.items()),
    ]
    if exchange.upgrade is not None:
        exchange.keep_alive = False
    exchange.respond(exc.status_code, headers, body, head=exchange.scope["method"] == "HEAD")


_SERVER_REFUSALS = {
    400: ("bad-request", "Bad request"),
    408: ("request-timeout", "Request timeout"),
    431: ("headers-too-large", "Request header fields too large"),
}


def bad_request(status: int, detail: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The server's own refusals (malformed HTTP) as problem+json."""
    slug, title = _SERVER_REFUSALS.get(status, ("internal-error", "Internal error"))
    return [(b"content-type", PROBLEM_MEDIA_TYPE.encode())], problem_body(
        status, slug, title, detail
    )


def create_public_app(gateway: Gateway) -> Proxy:
    """The public listener's request handler (for
    :class:`~gateway_api.transport.server.HttpServer`)."""
    return Proxy(gateway)
