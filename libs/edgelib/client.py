"""Service-to-service HTTP client: signed, traced, with timeouts and bounded retries.

Only idempotent methods (requests carrying an ``Idempotency-Key``, or calls the caller
declares ``idempotent=True``, such as reads sent as ``POST``) are retried, and only on
connection errors, timeouts and 502/503/504 answers. A call that could not connect at
all never reached the callee, so it is tried on another base URL whatever its method.
Idle pooled connections are dropped after ``keepalive_expiry`` seconds, below uvicorn's
5 s keep-alive, so a request is not written onto a connection the callee is closing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from edgelib.logs import current_request_id
from edgelib.signing import PeerSigner
from edgelib.tracing import inject_trace_headers

logger = logging.getLogger("edgelib.client")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUS = frozenset({502, 503, 504})
# Raised before any byte of the request left: safe to try again for any method.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class ServiceCallError(Exception):
    """A call to another service failed after its retries."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ServiceClient:
    """Calls one service, spread over its base URLs, signing every request."""

    def __init__(
        self,
        base_urls: str | Sequence[str],
        *,
        signer: PeerSigner,
        timeout: float = 5.0,
        connect_timeout: float = 1.0,
        retries: int = 2,
        backoff: float = 0.05,
        keepalive_expiry: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("ServiceClient needs at least one base URL")
        self.base_urls = [u.rstrip("/") for u in urls]
        self.signer = signer
        self.retries = retries
        self.backoff = backoff
        self._next = random.randrange(len(self.base_urls))
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
            limits=httpx.Limits(
                max_connections=100,
                max_keepalive_connections=20,
                keepalive_expiry=keepalive_expiry,
            ),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _pick(self, attempt: int) -> str:
        return self.base_urls[(self._next + attempt) % len(self.base_urls)]

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        identity: str = "",
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send one signed request; retry idempotent ones on another base URL.

        ``idempotent`` overrides what the method says: ``True`` for a read sent as
        ``POST`` (a policy decision, a lookup), ``False`` to never repeat a ``PUT``.
        """
        method = method.upper()
        body = b"" if json is None else orjson.dumps(json)
        out: dict[str, str] = dict(headers or {})
        if json is not None:
            out["content-type"] = "application/json"
        request_id = current_request_id()
        if request_id:
            out.setdefault("x-request-id", request_id)
        inject_trace_headers(out)
        target = httpx.URL(path, params=params).raw_path.decode("ascii")
        if idempotent is None:
            retryable = method in IDEMPOTENT_METHODS or "idempotency-key" in {
                k.lower() for k in out
            }
        else:
            retryable = idempotent
        attempts = 1 + self.retries
        self._next = (self._next + 1) % len(self.base_urls)
        last_error: Exception | None = None
        for attempt in range(attempts):
            url = self._pick(attempt) + target
            signed = {**out, **self.signer.sign(method, target, body, identity=identity)}
            try:
                response = await self._http.request(method, url, content=body, headers=signed)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                last_error = exc
                logger.warning(
                    "service call failed", extra={"url": url, "attempt": attempt, "error": str(exc)}
                )
                if not retryable and not isinstance(exc, NOT_SENT_ERRORS):
                    break
            else:
                if (
                    not retryable
                    or response.status_code not in RETRYABLE_STATUS
                    or attempt == attempts - 1
                ):
                    return response
                last_error = ServiceCallError(
                    f"{method} {url} answered {response.status_code}",
                    status_code=response.status_code,
                )
            if attempt < attempts - 1:
                await asyncio.sleep(self.backoff * (2**attempt) * (0.5 + random.random()))
        raise ServiceCallError(f"{method} {target} failed: {last_error}") from last_error

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)
