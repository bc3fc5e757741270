"""Signed webhooks, in the Standard Webhooks format (https://www.standardwebhooks.com).

Each POST carries ``webhook-id`` (the delivery id: the same on every retry, so a
receiver can drop repeats), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature: v1,<base64 HMAC-SHA256>`` over ``{id}.{timestamp}.{body}``
with the endpoint's secret (``whsec_<base64 key>``). Receivers should refuse
timestamps more than five minutes off.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import httpcore
import orjson

from sv_notice.delivery.addresses import (
    BlockedAddress,
    PinnedBackend,
    Resolver,
    resolve_allowed,
    system_resolver,
)
from sv_notice.delivery.channels import DeliveryFailed, DeliveryJob
from sv_notice.exceptions import InvalidWebhookUrl

SECRET_PREFIX = "whsec_"
TOLERANCE = 300


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, *, now: float | None = None) -> bool:
    """What a receiver does: check the timestamp window and one of the signatures."""
    try:
        message_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > TOLERANCE:
        return False
    expected = signature(secret, message_id, timestamp, body)
    return any(
        hmac.compare_digest(expected, sig) for sig in headers.get("webhook-signature", "").split()
    )


async def check_target(
    url: str, *, allow_private: bool, resolver: Resolver = system_resolver
) -> None:
    """Refuse URLs that are not plain http(s), and, unless allowed, non-public addresses.

    An early answer for the user; delivery checks again where it connects
    (:class:`~sv_notice.delivery.addresses.PinnedBackend`), since DNS may answer otherwise.
    """
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidWebhookUrl("the webhook URL has an invalid port") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhookUrl("a webhook URL must be an absolute http or https URL")
    if parts.username or parts.password:
        raise InvalidWebhookUrl("a webhook URL must not carry credentials")
    if allow_private:
        return
    try:
        await resolve_allowed(resolver, parts.hostname, port, allow_private=False)
    except BlockedAddress as exc:
        raise InvalidWebhookUrl("the webhook host resolves to a non-public address") from exc
    except httpcore.ConnectError as exc:
        raise InvalidWebhookUrl(f"the webhook host does not resolve: {parts.hostname}") from exc


def webhook_pool(
    *, timeout: float, allow_private: bool, resolver: Resolver = system_resolver, **backend: Any
) -> httpcore.AsyncConnectionPool:
    """The connection pool webhooks go through: pinned addresses, no proxy, no redirects."""
    return httpcore.AsyncConnectionPool(
        max_connections=50,
        max_keepalive_connections=10,
        keepalive_expiry=timeout,
        network_backend=PinnedBackend(resolver, allow_private=allow_private, **backend),
    )


class WebhookChannel:
    """POSTs the notice as JSON to the user's endpoint, signed with its secret."""

    def __init__(self, pool: httpcore.AsyncConnectionPool, *, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout

    async def send(self, job: DeliveryJob) -> None:
        if not job.webhook_url or not job.webhook_secret:
            raise DeliveryFailed("no webhook endpoint is set", permanent=True)
        parts = urlsplit(job.webhook_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DeliveryFailed("the webhook URL is not an http or https URL", permanent=True)
        body = orjson.dumps({"type": "notice", "notice": job.notice.to_json()})
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "edge-sv-notice/1",
            "webhook-id": job.delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(job.webhook_secret, job.delivery_id, timestamp, body),
        }
        phases = {"connect": self.timeout, "read": self.timeout, "write": self.timeout}
        try:
            # One deadline for the whole attempt: a receiver dripping bytes cannot hold a worker.
            async with asyncio.timeout(self.timeout):
                response = await self._post(job.webhook_url, body, headers, phases)
        except BlockedAddress as exc:
            raise DeliveryFailed(str(exc), permanent=True) from exc
        except (TimeoutError, httpcore.TimeoutException) as exc:
            raise DeliveryFailed(f"webhook timed out ({type(exc).__name__})") from exc
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
            raise DeliveryFailed(f"webhook unreachable ({type(exc).__name__})") from exc
        if 200 <= response < 300:
            return
        # 410 Gone says the endpoint will never take it; anything else may recover.
        raise DeliveryFailed(f"webhook answered HTTP {response}", permanent=response == 410)

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str], phases: dict[str, float]
    ) -> int:
        # The status is all a delivery needs; the answer's body is never read.
        async with self.pool.stream(
            "POST", url, headers=list(headers.items()), content=body, extensions={"timeout": phases}
        ) as response:
            return response.status
