"""Forwarding one HTTP request to an upstream pool: retries, timeouts, breakers, streaming."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, MutableMapping
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from edgelib.problems import GatewayTimeout, PayloadTooLarge, Problem, ServiceUnavailable

if TYPE_CHECKING:
    from gateway_api.routing import Route
    from gateway_api.upstreams import Instance, Pool, RetryBudget

Scope = MutableMapping[str, Any]
logger = logging.getLogger("gateway.forward")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})
#: Idempotent bodies up to this size are buffered so that a retry can resend them.
REPLAYABLE_BODY = 64 * 1024


class BadGateway(Problem):
    status_code, type_slug, title = 502, "bad-gateway", "Bad gateway"


class UpstreamUnreachable(ServiceUnavailable):
    """The connection failed, so nothing was sent: any method may try another instance."""

    type_slug = "upstream-unreachable"


class ClientGone(Exception):
    """The client disconnected while its body was being read."""


class RequestBody:
    """The client's body: streamed once, or buffered when small enough to replay."""

    def __init__(self, receive: Any, limit: int, length: int | None) -> None:
        self._receive = receive
        self.limit = limit
        self.length = length
        self.buffered: bytes | None = None
        self.started = False
        self.received = 0

    async def buffer(self) -> None:
        self.buffered = b"".join([chunk async for chunk in self._chunks()])

    async def _chunks(self) -> AsyncIterator[bytes]:
        self.started = True
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            if chunk:
                self.received += len(chunk)
                if self.received > self.limit:
                    raise PayloadTooLarge(f"the body exceeds this route's {self.limit} bytes")
                yield chunk
            if not message.get("more_body", False):
                return

    def payload(self) -> bytes | AsyncIterator[bytes]:
        if self.buffered is not None:
            return self.buffered
        return self._chunks()

    @property
    def replayable(self) -> bool:
        return self.buffered is not None or not self.started


async def forward(
    scope: Scope,
    send: Any,
    *,
    session: aiohttp.ClientSession,
    pool: Pool,
    route: Route,
    headers: list[tuple[str, str]],
    body: RequestBody | None,
    hash_key: str | None,
    budget: RetryBudget,
    request_id: str,
) -> tuple[int, str]:
    """Send the request to an instance of ``pool``; stream its answer to ``send``.

    Returns (status, instance id). Raises a Problem when no answer can be given
    (504 on timeout, 502 on a broken upstream, 503 when nothing is eligible), only
    before any byte of a response has been sent.
    """
    method: str = scope["method"]
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target = target + b"?" + scope["query_string"]
    path_qs = target.decode("latin-1")
    idempotent = method in IDEMPOTENT_METHODS or any(
        k.lower() == "idempotency-key" for k, _ in headers
    )
    if body is not None and idempotent and (body.length or 0) <= REPLAYABLE_BODY:
        await body.buffer()
    deadline = time.monotonic() + route.total_timeout
    budget.on_request()
    tried: set[str] = set()
    last_problem: Problem | None = None
    for attempt in range(1 + route.retries):
        if attempt:
            can_resend = body is None or body.replayable
            if not can_resend or not budget.try_spend():
                break
        instance = pool.choose(route.balancing, hash_key, tried)
        if instance is None:
            break
        tried.add(instance.url)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            last_problem = GatewayTimeout(f"no answer within {route.total_timeout}s")
            break
        outcome = await _attempt(
            send, session, instance, route, method, path_qs, headers, body, remaining, request_id
        )
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


async def _attempt(
    send: Any,
    session: aiohttp.ClientSession,
    instance: Instance,
    route: Route,
    method: str,
    path_qs: str,
    headers: list[tuple[str, str]],
    body: RequestBody | None,
    remaining: float,
    request_id: str,
) -> int | Problem:
    """One try on one instance: the status it answered, or the problem it caused."""
    url = URL(instance.url + path_qs, encoded=True)
    timeout = aiohttp.ClientTimeout(
        sock_connect=min(route.connect_timeout, remaining), sock_read=route.read_timeout
    )
    instance.in_flight += 1
    try:
        try:
            async with asyncio.timeout(remaining):
                resp = await session.request(
                    method,
                    url,
                    headers=headers,
                    data=body.payload() if body is not None else None,
                    allow_redirects=False,
                    timeout=timeout,
                )
        except aiohttp.ClientConnectorError as exc:
            _failed(instance, f"connect: {type(exc).__name__}")
            return UpstreamUnreachable(f"{instance.spec.service} refused the connection")
        except (TimeoutError, aiohttp.ServerTimeoutError):
            _failed(instance, "timeout")
            return GatewayTimeout(f"{instance.spec.service} did not answer in time")
        except aiohttp.ClientError as exc:
            if body is not None and body.received > body.limit:
                raise PayloadTooLarge(f"the body exceeds this route's {body.limit} bytes") from exc
            _failed(instance, type(exc).__name__)
            return BadGateway(f"{instance.spec.service} failed to answer")
        try:
            if resp.status in RETRY_STATUSES:
                instance.breaker.on_failure(time.monotonic())
                instance.errors += 1
            else:
                instance.breaker.on_success()
            await send(
                {
                    "type": "http.response.start",
                    "status": resp.status,
                    "headers": response_headers(resp.raw_headers, request_id),
                }
            )
            if method != "HEAD":
                async for chunk in resp.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            instance.served += 1
            return resp.status
        finally:
            resp.release()
    finally:
        instance.in_flight -= 1


def _failed(instance: Instance, reason: str) -> None:
    instance.errors += 1
    instance.last_error = reason
    instance.breaker.on_failure(time.monotonic())


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


def response_headers(raw: Any, request_id: str) -> list[tuple[bytes, bytes]]:
    """Upstream headers minus hop-by-hop ones (and those Connection names), plus the request id."""
    dropped = set(HOP_BY_HOP) | {b"x-request-id"}
    for name, value in raw:
        if name.lower() == b"connection":
            dropped.update(t.strip().lower() for t in value.split(b","))
    headers = [(name.lower(), value) for name, value in raw if name.lower() not in dropped]
    headers.append((b"x-request-id", request_id.encode()))
    return headers
