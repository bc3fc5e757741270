"""The service signature the gateway adds to every request it forwards (the hot path).

The same HMAC-SHA256 headers as :meth:`edgelib.signing.ServiceSigner.sign` with an
unsigned (streamed) body, made from the request's raw bytes and already encoded as
HTTP/1.1 header lines. Compiled with mypyc (``native.py``): this runs once per
authenticated request, and as plain Python its interpreter overhead cost as much as
the two SHA-256 state copies it wraps.
"""

from __future__ import annotations

import time
from typing import Any

from edgelib.signing import (
    HEADER_CONTENT_DIGEST,
    HEADER_IDENTITY,
    HEADER_SERVICE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    UNSIGNED_PAYLOAD,
    keyed_states,
    signed_message,
)

_UNSIGNED = UNSIGNED_PAYLOAD.encode()
_SIGNATURE_LINE = HEADER_SIGNATURE.encode() + b": "
_IDENTITY_LINE = HEADER_IDENTITY.encode() + b": "


class ForwardSigner:
    """Signs forwarded requests as ``service`` (verified by services with ``ServiceSigner``)."""

    def __init__(self, service: str, secret: bytes | str) -> None:
        self.service = service
        self._service = service.encode()
        states: tuple[Any, Any] = keyed_states(secret)
        self._inner: Any = states[0]
        self._outer: Any = states[1]
        # The lines that change once a second: (second, timestamp, lines).
        self._stamp: tuple[int, bytes, bytes] = (-1, b"", b"")
        #: Request methods as the signed message spells them (upper case, bytes); bounded
        #: by llhttp, which parses only the methods it knows.
        self._methods: dict[str, bytes] = {}

    def _mac(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        signature: str = outer.hexdigest()
        return signature.encode()

    def header_lines(self, method: str, target: bytes, identity: bytes = b"") -> bytes:
        """The signature headers for ``method target`` as ``name: value\\r\\n`` lines.

        ``target`` is the raw path with its query, as services rebuild it (decoded as
        latin-1); ``identity`` the encoded ``x-edge-identity`` value, or empty.
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
            # signed_message() as bytes: ASCII is the same in latin-1 and UTF-8.
            verb = self._methods.get(method)
            if verb is None:
                verb = self._methods[method] = method.upper().encode()
            message = b"\n".join((verb, target, stamp[1], self._service, identity, _UNSIGNED))
        else:
            message = signed_message(
                method,
                target.decode("latin-1"),
                stamp[1].decode(),
                self.service,
                identity.decode("latin-1"),
                UNSIGNED_PAYLOAD,
            ).encode()
        lines = stamp[2] + _SIGNATURE_LINE + self._mac(message) + b"\r\n"
        if identity:
            return lines + _IDENTITY_LINE + identity + b"\r\n"
        return lines
