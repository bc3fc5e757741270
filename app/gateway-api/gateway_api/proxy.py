"""The public listener: a lean ASGI app that routes, authenticates and forwards.

Not FastAPI: this is the hot path, so it works on raw ASGI messages, streams bodies
both ways with aiohttp (see doc/decisions.md), and answers every refusal with
problem+json.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from edgelib.identity import Identity
from edgelib.logs import reset_request_id, set_request_id
from edgelib.problems import PROBLEM_MEDIA_TYPE, Problem, ServiceUnavailable, problem_body
from gateway_api.forwarding import HOP_BY_HOP, ClientGone, RequestBody, forward
from gateway_api.routing import MethodNotAllowed, Route, UnsafePath, check_path
from gateway_api.websocket import proxy_websocket

if TYPE_CHECKING:
    from gateway_api.gateway import Gateway
    from gateway_api.upstreams import Pool

Scope = MutableMapping[str, Any]
logger = logging.getLogger("gateway.access")
tracer = trace.get_tracer("gateway-api")

_REPLACED = frozenset(
    {
        b"host",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-request-id",
        b"traceparent",
        b"tracestate",
        b"content-length",
    }
)


class NotFound(Problem):
    status_code, type_slug, title = 404, "no-route", "No route"


class MethodRefused(Problem):
    status_code, type_slug, title = 405, "method-not-allowed", "Method not allowed"


class BadPath(Problem):
    status_code, type_slug, title = 400, "unsafe-path", "Unsafe path"


class BadRequestBody(Problem):
    status_code, type_slug, title = 400, "bad-request", "Bad request"


class Proxy:
    """ASGI callable for the public listener."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind == "http" and scope["path"] == "/healthz":
            await _send_simple(send, 200, b'{"status":"ok"}', b"application/json")
            return
        if kind not in ("http", "websocket"):
            return
        request_id = _request_id(scope)
        token = set_request_id(request_id)
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in (b"traceparent", b"tracestate")
        }
        method = scope.get("method", "GET")
        started = time.perf_counter()
        status: int = 500
        upstream: str | None = None
        try:
            with tracer.start_as_current_span(
                f"{method} gateway", context=propagate.extract(carrier), kind=SpanKind.SERVER
            ):
                try:
                    status, upstream = await self._handle(scope, receive, send, request_id)
                except Problem as exc:
                    status = exc.status_code
                    if kind == "http":
                        await _problem(send, exc, request_id)
                    else:
                        await send({"type": "websocket.close", "code": 1008})
                except ClientGone:
                    status = 499
                logger.info(
                    "%s %s %s",
                    method,
                    scope["path"],
                    status,
                    extra={
                        "method": method,
                        "path": scope["path"],
                        "status": status,
                        "upstream": upstream,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    },
                )
        finally:
            reset_request_id(token)

    async def _handle(
        self, scope: Scope, receive: Any, send: Any, request_id: str
    ) -> tuple[int, str | None]:
        gateway = self.gateway
        path: str = scope["path"]
        method = "GET" if scope["type"] == "websocket" else scope["method"]
        try:
            check_path(path, scope.get("raw_path") or path.encode())
        except UnsafePath as exc:
            raise BadPath(str(exc)) from exc
        try:
            route = gateway.routes.match(method, path)
        except MethodNotAllowed as exc:
            raise MethodRefused(
                f"{method} is not allowed on {path}",
                headers={"Allow": ", ".join(sorted(exc.allowed))},
            ) from exc
        if route is None:
            raise NotFound(f"no route serves {path}")
        identity: Identity | None = None
        if route.access != "public":
            identity = await gateway.authenticate(scope)
            if route.permission is not None:
                await gateway.authorize(identity, route.permission)
        region = await gateway.region_for(route, identity)
        pool = gateway.upstreams.pool(route.service, region)
        if pool is None:
            raise ServiceUnavailable(
                f"{route.service} has no instances in region {region}",
                headers={"Retry-After": "5"},
            )
        headers = self._outgoing_headers(scope, request_id, identity)
        hash_key = identity.user_id if identity is not None else _client_ip(scope)
        if scope["type"] == "websocket":
            return await proxy_websocket(
                scope,
                receive,
                send,
                session=gateway.session,
                pool=pool,
                route=route,
                headers=headers,
                hash_key=hash_key,
            )
        return await forward(
            scope,
            send,
            session=gateway.session,
            pool=pool,
            route=route,
            headers=headers,
            body=_request_body(scope, receive, route),
            hash_key=hash_key,
            budget=gateway.retry_budget,
            request_id=request_id,
        )

    def _outgoing_headers(
        self, scope: Scope, request_id: str, identity: Identity | None
    ) -> list[tuple[str, str]]:
        """Client headers minus hop-by-hop and internal ones, plus forwarding headers."""
        raw = scope["headers"]
        dropped = set(HOP_BY_HOP)
        for name, value in raw:
            if name == b"connection":
                dropped.update(t.strip().lower() for t in value.split(b","))
        out: list[tuple[str, str]] = []
        host = ""
        forwarded_for = ""
        for name, value in raw:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded_for = value.decode("latin-1")
            elif name == b"content-length":
                out.append(("content-length", value.decode("latin-1")))
            if name in dropped or name in _REPLACED or name.startswith(b"x-edge-"):
                continue
            if scope["type"] == "websocket" and name.startswith(b"sec-websocket-"):
                continue
            out.append((name.decode("latin-1"), value.decode("latin-1")))
        client_ip = _client_ip(scope) or ""
        out.append(
            ("x-forwarded-for", f"{forwarded_for}, {client_ip}" if forwarded_for else client_ip)
        )
        out.append(("x-forwarded-proto", _scheme(scope)))
        if host:
            out.append(("x-forwarded-host", host))
        out.append(("x-request-id", request_id))
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        out.extend(carrier.items())
        if identity is not None:
            target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            method = "GET" if scope["type"] == "websocket" else scope["method"]
            signed = self.gateway.signer.sign(method, target, None, identity=identity.encode())
            out.extend(signed.items())
        return out


def _request_body(scope: Scope, receive: Any, route: Route) -> RequestBody | None:
    """The body to forward, or None; refuses ambiguous or oversized bodies up front."""
    length: int | None = None
    chunked = False
    lengths = 0
    for name, value in scope["headers"]:
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
        from edgelib.problems import PayloadTooLarge

        raise PayloadTooLarge(f"the body exceeds this route's {route.max_body} bytes")
    if not chunked and not length:
        return None
    return RequestBody(receive, route.max_body, length)


def _client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def _scheme(scope: Scope) -> str:
    scheme: str = scope.get("scheme", "http")
    return {"ws": "http", "wss": "https"}.get(scheme, scheme)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and 0 < len(value) <= 128 and value.isascii():
            return str(value.decode())
    return uuid.uuid4().hex


async def _send_simple(send: Any, status: int, body: bytes, media_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", media_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _problem(send: Any, exc: Problem, request_id: str) -> None:
    body = problem_body(exc.status_code, exc.type_slug, exc.title, exc.detail, **exc.extensions)
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        *((k.lower().encode(), v.encode()) for k, v in exc.headers.items()),
    ]
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


__all__ = ["Pool", "Proxy"]
