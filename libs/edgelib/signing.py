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
_UNSIGNED_BYTES = UNSIGNED_PAYLOAD.encode()
_SIGNATURE_LINE = HEADER_SIGNATURE.encode() + b": "
_IDENTITY_LINE = HEADER_IDENTITY.encode() + b": "
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


class ServiceSigner:
    """Signs outgoing requests as ``service`` and verifies incoming ones."""

    def __init__(self, service: str, secret: bytes | str, *, max_skew: float = 30.0) -> None:
        self.service = service
        key = secret.encode() if isinstance(secret, str) else secret
        # HMAC-SHA256 (RFC 2104) from two SHA-256 states keyed once, copied per signature:
        # the gateway signs every forwarded request, and copying two hash states costs
        # three quarters of copying OpenSSL's HMAC context (which holds three).
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))
        self.max_skew = max_skew
        # header_lines() reuses the encoded lines that change once a second: (second,
        # timestamp, lines), replaced as one tuple so that threads never mix two seconds.
        self._stamp: tuple[int, bytes, bytes] = (-1, b"", b"")
        self._service_bytes = service.encode()

    def _mac(
        self, method: str, target: str, timestamp: str, caller: str, identity: str, digest: str
    ) -> str:
        message = "\n".join((method.upper(), target, timestamp, caller, identity, digest))
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

    def header_lines(self, method: str, target: bytes, identity: bytes = b"") -> bytes:
        """:meth:`sign` for a request whose body is not digested, as HTTP/1.1 header lines.

        The gateway's forwarding path signs every request it passes on; this gives the
        same headers as ``sign(method, target.decode("latin-1"), None, identity=...)``,
        already encoded (``name: value\\r\\n`` each), from the request's raw bytes, reusing
        the lines that change once a second.
        """
        second = int(time.time())
        stamp = self._stamp
        if stamp[0] != second:
            timestamp = str(second)
            stamp = self._stamp = (
                second,
                timestamp.encode(),
                (
                    f"{HEADER_SERVICE}: {self.service}\r\n"
                    f"{HEADER_TIMESTAMP}: {timestamp}\r\n"
                    f"{HEADER_CONTENT_DIGEST}: {UNSIGNED_PAYLOAD}\r\n"
                ).encode(),
            )
        if target.isascii() and identity.isascii():
            # The signed message as bytes, as _mac() would encode it (ASCII is the same
            # in latin-1 and UTF-8): no str round trip per request.
            signature = self._hmac(
                b"\n".join(
                    (method.upper().encode(), target, stamp[1], self._service_bytes, identity,
                     _UNSIGNED_BYTES)
                )
            )  # fmt: skip
        else:
            signature = self._mac(
                method, target.decode("latin-1"), stamp[1].decode(), self.service,
                identity.decode("latin-1"), UNSIGNED_PAYLOAD,
            )  # fmt: skip
        lines = stamp[2] + _SIGNATURE_LINE + signature.encode() + b"\r\n"
        if identity:
            lines += _IDENTITY_LINE + identity + b"\r\n"
        return lines

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
