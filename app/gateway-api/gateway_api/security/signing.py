"""The service signature the gateway adds to every request it forwards (the hot path).

The same HMAC-SHA256 headers as :meth:`edgelib.signing.ServiceSigner.sign`, made from
the request's raw bytes and already encoded as HTTP/1.1 header lines, with the key
the gateway holds for the destination service (``edgelib.keyring``). Compiled with
mypyc (``native.py``): this runs once per authenticated request, and as plain Python
its interpreter overhead cost as much as the two SHA-256 state copies it wraps.

The nonce is this signer's random prefix and a counter: unique per process without a
random draw per request (each gateway worker is its own process with its own signer).
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Final

from edgelib.keyring import Keyring, KeyringError
from edgelib.signing import (
    HEADER_CONTENT_DIGEST,
    HEADER_IDENTITY,
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_SERVICE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    UNSIGNED_PAYLOAD,
    SignatureError,
    keyed_states,
    signed_message,
)

_UNSIGNED: Final = UNSIGNED_PAYLOAD.encode()
_NONCE_LINE: Final = HEADER_NONCE.encode() + b": "
_DIGEST_LINE: Final = b"\r\n" + HEADER_CONTENT_DIGEST.encode() + b": "
_SIGNATURE_LINE: Final = b"\r\n" + HEADER_SIGNATURE.encode() + b": "
_IDENTITY_CRLF: Final = b"\r\n" + HEADER_IDENTITY.encode() + b": "
_CRLF: Final = b"\r\n"


class _Destination:
    """The gateway's key towards one service, and the lines that change once a second."""

    def __init__(self, caller: str, destination: str, kid: str, key: bytes) -> None:
        self.caller = caller
        self.destination = destination
        self.kid = kid
        states: tuple[Any, Any] = keyed_states(key)
        self.inner: Any = states[0]
        self.outer: Any = states[1]
        #: caller, destination and kid as the signed message spells them.
        self.fields = b"\n".join((caller.encode(), destination.encode(), kid.encode()))
        # (second, timestamp, the service, key id and timestamp lines)
        self.stamp: tuple[int, bytes, bytes] = (-1, b"", b"")

    def lines_at(self, second: int) -> tuple[int, bytes, bytes]:
        stamp = self.stamp
        if stamp[0] != second:
            timestamp = str(second)
            stamp = self.stamp = (
                second,
                timestamp.encode(),
                (
                    f"{HEADER_SERVICE}: {self.caller}\r\n"
                    f"{HEADER_KEY_ID}: {self.kid}\r\n"
                    f"{HEADER_TIMESTAMP}: {timestamp}\r\n"
                ).encode(),
            )
        return stamp


class ForwardSigner:
    """Signs forwarded requests as ``service`` (verified by services with ``ServiceSigner``).

    ``keys`` is the gateway's keyring, or a root secret (local profile and tests).
    ``sign_bodies``: forwarded bodies are buffered and carry their SHA-256 (off by
    default: streamed bodies go ``UNSIGNED-PAYLOAD``; the cost is in doc/decisions.md).
    """

    def __init__(
        self, service: str, keys: Keyring | bytes | str, *, sign_bodies: bool = False
    ) -> None:
        self.service = service
        self.keyring = keys if isinstance(keys, Keyring) else Keyring.from_root(keys, service)
        self.sign_bodies = sign_bodies
        self._destinations: dict[str, _Destination] = {}
        self._prefix = secrets.token_hex(8).encode() + b"-"
        self._counter = 0
        #: Request methods as the signed message spells them (upper case, bytes); bounded
        #: by llhttp, which parses only the methods it knows.
        self._methods: dict[str, bytes] = {}

    def _destination(self, destination: str) -> _Destination:
        found = self._destinations.get(destination)
        if found is None:
            try:
                kid, key = self.keyring.signing_key(destination)
            except KeyringError as exc:
                raise SignatureError(str(exc)) from exc
            found = _Destination(self.service, destination, kid, key)
            self._destinations[destination] = found
        return found

    def _mac(self, dest: _Destination, message: bytes) -> bytes:
        inner = dest.inner.copy()
        inner.update(message)
        outer = dest.outer.copy()
        outer.update(inner.digest())
        signature: str = outer.hexdigest()
        return signature.encode()

    def header_lines(
        self,
        method: str,
        target: bytes,
        destination: str,
        identity: bytes = b"",
        digest: bytes = b"",
    ) -> bytes:
        """The signature headers for ``method target`` to ``destination``, as
        ``name: value\\r\\n`` lines.

        ``target`` is the raw path with its query, as services rebuild it (decoded as
        latin-1); ``identity`` the encoded ``x-edge-identity`` value, or empty;
        ``digest`` the body's SHA-256 in hex, or empty for an unsigned (streamed) body.
        Raises :class:`SignatureError` when the gateway holds no key for ``destination``.
        """
        dest = self._destinations.get(destination)
        if dest is None:
            dest = self._destination(destination)
        stamp = dest.lines_at(int(time.time()))
        self._counter += 1
        nonce = self._prefix + str(self._counter).encode()
        body_digest = digest or _UNSIGNED
        if target.isascii() and identity.isascii():
            # signed_message() as bytes: ASCII is the same in latin-1 and UTF-8.
            verb = self._methods.get(method)
            if verb is None:
                verb = self._methods[method] = method.upper().encode()
            message = b"\n".join(
                (verb, target, stamp[1], dest.fields, nonce, identity, body_digest)
            )
        else:
            message = signed_message(
                method,
                target.decode("latin-1"),
                stamp[1].decode(),
                self.service,
                destination,
                dest.kid,
                nonce.decode(),
                identity.decode("latin-1"),
                body_digest.decode(),
            ).encode()
        mac = self._mac(dest, message)
        if identity:
            return b"".join(
                (stamp[2], _NONCE_LINE, nonce, _DIGEST_LINE, body_digest, _SIGNATURE_LINE, mac,
                 _IDENTITY_CRLF, identity, _CRLF)
            )  # fmt: skip
        return b"".join(
            (stamp[2], _NONCE_LINE, nonce, _DIGEST_LINE, body_digest, _SIGNATURE_LINE, mac, _CRLF)
        )
