"""Signed service identity for calls between services (HMAC-SHA256 with a timestamp).

The signature covers the method, the path with its query, the timestamp, the
calling service, the identity header the gateway may add, and a digest of the
body (or ``UNSIGNED-PAYLOAD`` for streamed bodies). Verification rejects stale
timestamps, so a captured request cannot be replayed later than ``max_skew``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import _Hash

HEADER_SERVICE = "x-edge-service"
HEADER_TIMESTAMP = "x-edge-timestamp"
HEADER_SIGNATURE = "x-edge-signature"
HEADER_CONTENT_DIGEST = "x-edge-content-sha256"
HEADER_IDENTITY = "x-edge-identity"

#: Headers a client must never be able to set from outside: the gateway strips them.
INTERNAL_HEADERS = frozenset(
    {HEADER_SERVICE, HEADER_TIMESTAMP, HEADER_SIGNATURE, HEADER_CONTENT_DIGEST, HEADER_IDENTITY}
)

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: SHA-256's block size, and the HMAC pads (RFC 2104) as byte translation tables.
_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class SignatureError(Exception):
    """A request's service signature is missing, stale or wrong."""


def body_digest(body: bytes | None) -> str:
    if body is None:
        return UNSIGNED_PAYLOAD
    return hashlib.sha256(body).hexdigest()


def keyed_states(secret: bytes | str) -> tuple[_Hash, _Hash]:
    """HMAC-SHA256's inner and outer SHA-256 states keyed with ``secret`` (RFC 2104).

    Copying these two per signature costs three quarters of copying OpenSSL's HMAC
    context (which holds three); the gateway signs every request it forwards with them
    (``gateway_api.signing``).
    """
    key = secret.encode() if isinstance(secret, str) else secret
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


def signed_message(
    method: str, target: str, timestamp: str, caller: str, identity: str, digest: str
) -> str:
    """What a signature covers, one field a line (``ServiceSigner`` and the gateway agree)."""
    return "\n".join((method.upper(), target, timestamp, caller, identity, digest))


class ServiceSigner:
    """Signs outgoing requests as ``service`` and verifies incoming ones."""

    def __init__(self, service: str, secret: bytes | str, *, max_skew: float = 30.0) -> None:
        self.service = service
        self._inner, self._outer = keyed_states(secret)
        self.max_skew = max_skew

    def _mac(
        self, method: str, target: str, timestamp: str, caller: str, identity: str, digest: str
    ) -> str:
        message = signed_message(method, target, timestamp, caller, identity, digest)
        return self._hmac(message.encode())

    def _hmac(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def sign(
        self,
        method: str,
        target: str,
        body: bytes | None = b"",
        *,
        identity: str = "",
        now: float | None = None,
    ) -> dict[str, str]:
        """Headers that prove this service sent ``method target`` with ``body``."""
        timestamp = str(int(now if now is not None else time.time()))
        digest = body_digest(body)
        headers = {
            HEADER_SERVICE: self.service,
            HEADER_TIMESTAMP: timestamp,
            HEADER_CONTENT_DIGEST: digest,
            HEADER_SIGNATURE: self._mac(method, target, timestamp, self.service, identity, digest),
        }
        if identity:
            headers[HEADER_IDENTITY] = identity
        return headers

    def verify(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        require_body_digest: bool = True,
        now: float | None = None,
    ) -> str:
        """Return the calling service's name, or raise :class:`SignatureError`."""
        caller = headers.get(HEADER_SERVICE)
        timestamp = headers.get(HEADER_TIMESTAMP)
        signature = headers.get(HEADER_SIGNATURE)
        digest = headers.get(HEADER_CONTENT_DIGEST)
        if not caller or not timestamp or not signature or not digest:
            raise SignatureError("missing service signature")
        try:
            sent_at = int(timestamp)
        except ValueError as exc:
            raise SignatureError("malformed signature timestamp") from exc
        current = now if now is not None else time.time()
        if abs(current - sent_at) > self.max_skew:
            raise SignatureError("stale service signature")
        if digest == UNSIGNED_PAYLOAD:
            if require_body_digest:
                raise SignatureError("body digest required")
        elif body is None or not hmac.compare_digest(digest, body_digest(body)):
            raise SignatureError("body does not match its digest")
        identity = headers.get(HEADER_IDENTITY, "")
        expected = self._mac(method, target, timestamp, caller, identity, digest)
        if not hmac.compare_digest(expected, signature):
            raise SignatureError("bad service signature")
        return caller
