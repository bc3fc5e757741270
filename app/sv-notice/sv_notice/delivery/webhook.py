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
import ipaddress
import secrets
import socket
import time
from urllib.parse import urlsplit

import httpx
import orjson

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


async def check_target(url: str, *, allow_private: bool) -> None:
    """Refuse URLs that are not plain http(s), and, unless allowed, non-public addresses."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhookUrl("a webhook URL must be an absolute http or https URL")
    if parts.username or parts.password:
        raise InvalidWebhookUrl("a webhook URL must not carry credentials")
    if allow_private:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except (OSError, ValueError) as exc:
        raise InvalidWebhookUrl(f"the webhook host does not resolve: {parts.hostname}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise InvalidWebhookUrl("the webhook host resolves to a non-public address")


class WebhookChannel:
    """POSTs the notice as JSON to the user's endpoint, signed with its secret."""

    def __init__(self, http: httpx.AsyncClient, *, allow_private: bool) -> None:
        self.http = http
        self.allow_private = allow_private

    async def send(self, job: DeliveryJob) -> None:
        if not job.webhook_url or not job.webhook_secret:
            raise DeliveryFailed("no webhook endpoint is set", permanent=True)
        try:
            await check_target(job.webhook_url, allow_private=self.allow_private)
        except InvalidWebhookUrl as exc:
            raise DeliveryFailed(exc.detail, permanent=True) from exc
        body = orjson.dumps({"type": "notice", "notice": job.notice.to_json()})
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "edge-sv-notice/1",
            "webhook-id": job.delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(job.webhook_secret, job.delivery_id, timestamp, body),
        }
        try:
            response = await self.http.post(job.webhook_url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(f"webhook timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"webhook unreachable ({type(exc).__name__})") from exc
        if 200 <= response.status_code < 300:
            return
        # 410 Gone says the endpoint will never take it; anything else may recover.
        raise DeliveryFailed(
            f"webhook answered HTTP {response.status_code}", permanent=response.status_code == 410
        )
