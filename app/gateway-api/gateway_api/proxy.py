"""The public listener: a lean ASGI app that routes and forwards each request.

Not FastAPI: this is the hot path, so it works on raw ASGI messages, streams bodies
both ways with aiohttp (see doc/decisions.md), and answers every refusal with
problem+json.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from yarl import URL

from edgelib.identity import Identity
from edgelib.logs import reset_request_id, set_request_id
from edgelib.problems import PROBLEM_MEDIA_TYPE, Problem, problem_body
from gateway_api.routing import MethodNotAllowed, UnsafePath, check_path
from gateway_api.upstreams import Instance

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from gateway_api.gateway import Gateway

logger = logging.getLogger("gateway.access")
tracer = trace.get_tracer("gateway-api")

HOP_BY_HOP = frozenset(
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
_REPLACED = frozenset(
    {
        b"host",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-request-id",
        b"traceparent",
        b"tracestate",
    }
)
_RETRYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class Proxy:
    """ASGI callable for the public listener."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            # WebSocket proxying arrives with the resilient-forwarding work.
            await send({"type": "websocket.close", "code": 1003})
            return
        path: str = scope["path"]
        if path == "/healthz":
            await _send_simple(send, 200, b'{"status":"ok"}', b"application/json")
            return

        request_id = _request_id(scope)
        token = set_request_id(request_id)
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in (b"traceparent", b"tracestate")
        }
        started = time.perf_counter()
        try:
            with tracer.start_as_current_span(
                f"{scope['method']} gateway",
                context=propagate.extract(carrier),
                kind=SpanKind.SERVER,
            ):
                status, upstream = await self._handle(scope, receive, send, request_id)
                logger.info(
                    "%s %s %s",
                    scope["method"],
                    path,
                    status,
                    extra={
                        "method": scope["method"],
                        "path": path,
                        "status": status,
                        "upstream": upstream,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    },
                )
        finally:
            reset_request_id(token)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, request_id: str
    ) -> tuple[int, str | None]:
        path: str = scope["path"]
        gateway = self.gateway
        try:
            check_path(path, scope.get("raw_path") or path.encode())
            try:
                route = gateway.routes.match(scope["method"], path)
            except MethodNotAllowed as exc:
                allow = ", ".join(sorted(exc.allowed))
                return await _problem(
                    send,
                    405,
                    "method-not-allowed",
                    "Method not allowed",
                    f"{scope['method']} is not allowed on {path}.",
                    request_id,
                    headers=[(b"allow", allow.encode())],
                )
            if route is None:
                return await _problem(
                    send, 404, "no-route", "No route", f"No route serves {path}.", request_id
                )
            identity = None
            if route.access != "public":
                identity = await gateway.authenticate(scope)
                if route.permission is not None:
                    await gateway.authorize(identity, route.permission)
            region = await gateway.region_for(route, identity)
        except UnsafePath as exc:
            return await _problem(send, 400, "unsafe-path", "Unsafe path", str(exc), request_id)
        except Problem as exc:
            return await _problem(
                send,
                exc.status_code,
                exc.type_slug,
                exc.title,
                exc.detail,
                request_id,
                headers=[(k.lower().encode(), v.encode()) for k, v in exc.headers.items()],
            )
        pool = gateway.upstreams.pool(route.service, region)
        if pool is None:
            return await _problem(
                send,
                503,
                "no-upstream",
                "No upstream",
                f"{route.service} has no instances in region {region}.",
                request_id,
                retry_after=5,
            )
        return await self._forward(scope, receive, send, pool.choose, request_id, identity)

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        choose: object,
        request_id: str,
        identity: Identity | None,
    ) -> tuple[int, str | None]:
        gateway = self.gateway
        method: str = scope["method"]
        headers, has_body = _outgoing_headers(scope, request_id)
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target = target + b"?" + scope["query_string"]
        if identity is not None:
            signed = gateway.signer.sign(
                method, target.decode("latin-1"), None, identity=identity.encode()
            )
            headers.extend(signed.items())
        retryable = method in _RETRYABLE_METHODS and not has_body
        attempts = 1 + (gateway.settings.max_retries if retryable else 0)
        tried: set[str] = set()
        for _ in range(attempts):
            instance: Instance | None = choose(tried)  # type: ignore[operator]
            if instance is None:
                break
            tried.add(instance.url)
            url = URL(instance.url + target.decode("latin-1"), encoded=True)
            instance.in_flight += 1
            try:
                data = _body_stream(receive) if has_body else None
                async with gateway.session.request(
                    method,
                    url,
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                    timeout=gateway.timeout,
                ) as resp:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": resp.status,
                            "headers": _response_headers(resp),
                        }
                    )
                    async for chunk in resp.content.iter_any():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b""})
                    instance.served += 1
                    if resp.status >= 500:
                        instance.errors += 1
                    return resp.status, instance.spec.id
            except aiohttp.ClientConnectorError as exc:
                instance.errors += 1
                gateway.health.record(instance, False, type(exc).__name__)
                continue
            except (TimeoutError, aiohttp.ServerTimeoutError):
                instance.errors += 1
                return await _problem(
                    send,
                    504,
                    "upstream-timeout",
                    "Upstream timeout",
                    "The service did not answer in time.",
                    request_id,
                )
            except aiohttp.ClientError as exc:
                instance.errors += 1
                logger.warning("upstream error", extra={"error": repr(exc)})
                return await _problem(
                    send,
                    502,
                    "bad-gateway",
                    "Bad gateway",
                    "The service failed to answer.",
                    request_id,
                )
            finally:
                instance.in_flight -= 1
        return await _problem(
            send,
            503,
            "no-healthy-upstream",
            "No healthy upstream",
            "No healthy instance can serve this request now.",
            request_id,
            retry_after=1,
        )


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and 0 < len(value) <= 128 and value.isascii():
            return str(value.decode())
    return uuid.uuid4().hex


def _outgoing_headers(scope: Scope, request_id: str) -> tuple[list[tuple[str, str]], bool]:
    """Client headers minus hop-by-hop and internal ones, plus forwarding headers."""
    raw = scope["headers"]
    dropped = set(HOP_BY_HOP)
    for name, value in raw:
        if name == b"connection":
            dropped.update(t.strip().lower() for t in value.split(b","))
    out: list[tuple[str, str]] = []
    has_body = False
    host = ""
    forwarded_for = ""
    for name, value in raw:
        if name == b"content-length":
            has_body = value.strip() not in (b"0", b"")
        elif name == b"transfer-encoding":
            has_body = True
        if name == b"host":
            host = value.decode("latin-1")
        elif name == b"x-forwarded-for":
            forwarded_for = value.decode("latin-1")
        if name in dropped or name in _REPLACED or name.startswith(b"x-edge-"):
            continue
        out.append((name.decode("latin-1"), value.decode("latin-1")))
    client = scope.get("client")
    client_ip = client[0] if client else ""
    out.append(("x-forwarded-for", f"{forwarded_for}, {client_ip}" if forwarded_for else client_ip))
    out.append(("x-forwarded-proto", scope.get("scheme", "http")))
    if host:
        out.append(("x-forwarded-host", host))
    out.append(("x-request-id", request_id))
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    out.extend(carrier.items())
    return out, has_body


def _response_headers(resp: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    for name, value in resp.raw_headers:
        lowered = name.lower()
        if lowered in HOP_BY_HOP:
            continue
        headers.append((lowered, value))
    return headers


async def _body_stream(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError("client disconnected")
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


async def _send_simple(send: Send, status: int, body: bytes, media_type: bytes) -> None:
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


async def _problem(
    send: Send,
    status: int,
    slug: str,
    title: str,
    detail: str,
    request_id: str,
    *,
    retry_after: int | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, None]:
    body = problem_body(status, slug, title, detail)
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        *(headers or []),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status, None


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
