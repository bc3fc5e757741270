"""Signed service identity for calls between services (HMAC-SHA256, RFC 9421 in spirit).

A signature covers the method, the path with its query, the timestamp, the calling
service, the destination service, the key id, a nonce, the identity header the
gateway may add, and a digest of the body (or ``UNSIGNED-PAYLOAD`` for streamed
bodies). The key is the caller's key for that destination (``edgelib.keyring``), so a
service's ring signs only as that service and only towards the services it calls.

Verification rejects stale timestamps (``max_skew``); the nonce lets the verifier
refuse a replay inside that window (``edgelib.replay``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgelib.keyring import Keyring, KeyringError

if TYPE_CHECKING:
    from hashlib import _Hash

HEADER_SERVICE = "x-edge-service"
HEADER_KEY_ID = "x-edge-key-id"
HEADER_TIMESTAMP = "x-edge-timestamp"
HEADER_NONCE = "x-edge-nonce"
HEADER_SIGNATURE = "x-edge-signature"
HEADER_CONTENT_DIGEST = "x-edge-content-sha256"
HEADER_IDENTITY = "x-edge-identity"

#: Headers a client must never be able to set from outside: the gateway strips them.
INTERNAL_HEADERS = frozenset(
    {
        HEADER_SERVICE,
        HEADER_KEY_ID,
        HEADER_TIMESTAMP,
        HEADER_NONCE,
        HEADER_SIGNATURE,
        HEADER_CONTENT_DIGEST,
        HEADER_IDENTITY,
    }
)

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: Longest nonce and key id a verifier accepts (they become replay-cache keys).
MAX_NONCE = 64
MAX_KID = 32
#: SHA-256's block size, and the HMAC pads (RFC 2104) as byte translation tables.
_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
#: Keyed states a verifier keeps (callers x kids); bounded, the names come from outside.
_STATE_CACHE = 256


class SignatureError(Exception):
    """A request's service signature is missing, stale, replayed or wrong."""


def body_digest(body: bytes | None) -> str:
    if body is None:
        return UNSIGNED_PAYLOAD
    return hashlib.sha256(body).hexdigest()


def keyed_states(secret: bytes | str) -> tuple[_Hash, _Hash]:
    """HMAC-SHA256's inner and outer SHA-256 states keyed with ``secret`` (RFC 2104).

    Copying these two per signature costs three quarters of copying OpenSSL's HMAC
    context (which holds three); the gateway signs every request it forwards with them
    (``gateway_api.security.signing``).
    """
    key = secret.encode() if isinstance(secret, str) else secret
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


def signed_message(
    method: str,
    target: str,
    timestamp: str,
    caller: str,
    destination: str,
    kid: str,
    nonce: str,
    identity: str,
    digest: str,
) -> str:
    """What a signature covers, one field a line (``ServiceSigner`` and the gateway agree)."""
    return "\n".join(
        (method.upper(), target, timestamp, caller, destination, kid, nonce, identity, digest)
    )


def _hmac(states: tuple[_Hash, _Hash], message: bytes) -> str:
    inner = states[0].copy()
    inner.update(message)
    outer = states[1].copy()
    outer.update(inner.digest())
    return outer.hexdigest()


def new_nonce() -> str:
    """A fresh nonce: 96 random bits, hex."""
    return secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class SignedCaller:
    """A verified request's signer: the calling service, its nonce and its timestamp."""

    service: str
    nonce: str
    timestamp: int


class PeerSigner:
    """Signs one service's requests to one destination (what a peer client holds)."""

    def __init__(self, signer: ServiceSigner, destination: str) -> None:
        self.signer = signer
        self.destination = destination

    @property
    def service(self) -> str:
        return self.signer.service

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
        return self.signer.sign(
            method, target, body, destination=self.destination, identity=identity, now=now
        )


class ServiceSigner:
    """Signs this service's outgoing requests and verifies incoming ones, with its keyring.

    ``keys`` is the service's :class:`Keyring`, or a root secret (local profile and
    tests), from which every pair's key is derived.
    """

    def __init__(
        self, service: str, keys: Keyring | bytes | str, *, max_skew: float = 30.0
    ) -> None:
        self.service = service
        self.keyring = keys if isinstance(keys, Keyring) else Keyring.from_root(keys, service)
        self.max_skew = max_skew
        self._signing: dict[str, tuple[str, tuple[_Hash, _Hash]]] = {}
        self._verifying: dict[tuple[str, str], tuple[_Hash, _Hash]] = {}
        self._peers: dict[str, PeerSigner] = {}

    def to(self, destination: str) -> PeerSigner:
        """A signer for this service's requests to ``destination``."""
        peer = self._peers.get(destination)
        if peer is None:
            peer = self._peers[destination] = PeerSigner(self, destination)
        return peer

    def can_sign_for(self, destination: str) -> bool:
        """Whether this service holds a key for calls to ``destination``."""
        try:
            self.keyring.signing_key(destination)
        except KeyringError:
            return False
        return True

    def _signing_states(self, destination: str) -> tuple[str, tuple[_Hash, _Hash]]:
        entry = self._signing.get(destination)
        if entry is None:
            try:
                kid, key = self.keyring.signing_key(destination)
            except KeyringError as exc:
                raise SignatureError(str(exc)) from exc
            entry = self._signing[destination] = (kid, keyed_states(key))
        return entry

    def sign(
        self,
        method: str,
        target: str,
        body: bytes | None = b"",
        *,
        destination: str,
        identity: str = "",
        now: float | None = None,
    ) -> dict[str, str]:
        """Headers that prove this service sent ``method target`` with ``body`` to
        ``destination``; raises :class:`SignatureError` without a key for it."""
        kid, states = self._signing_states(destination)
        timestamp = str(int(now if now is not None else time.time()))
        digest = body_digest(body)
        nonce = new_nonce()
        message = signed_message(
            method, target, timestamp, self.service, destination, kid, nonce, identity, digest
        )
        headers = {
            HEADER_SERVICE: self.service,
            HEADER_KEY_ID: kid,
            HEADER_TIMESTAMP: timestamp,
            HEADER_NONCE: nonce,
            HEADER_CONTENT_DIGEST: digest,
            HEADER_SIGNATURE: _hmac(states, message.encode()),
        }
        if identity:
            headers[HEADER_IDENTITY] = identity
        return headers

    def _verifying_states(self, caller: str, kid: str) -> tuple[_Hash, _Hash] | None:
        states = self._verifying.get((caller, kid))
        if states is None:
            key = self.keyring.verifying_key(caller, kid)
            if key is None:
                return None
            if len(self._verifying) >= _STATE_CACHE:
                self._verifying.clear()
            states = self._verifying[(caller, kid)] = keyed_states(key)
        return states

    def verify_request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        *,
        require_body_digest: bool = True,
        now: float | None = None,
    ) -> SignedCaller:
        """The verified signer of a request to this service, or :class:`SignatureError`.

        Checks the signature only; refusing a replayed nonce is the caller's next step
        (:class:`edgelib.replay.ReplayCache`).
        """
        caller = headers.get(HEADER_SERVICE)
        kid = headers.get(HEADER_KEY_ID)
        timestamp = headers.get(HEADER_TIMESTAMP)
        nonce = headers.get(HEADER_NONCE)
        signature = headers.get(HEADER_SIGNATURE)
        digest = headers.get(HEADER_CONTENT_DIGEST)
        if not caller or not kid or not timestamp or not nonce or not signature or not digest:
            raise SignatureError("missing service signature")
        if len(nonce) > MAX_NONCE or len(kid) > MAX_KID or not nonce.isascii():
            raise SignatureError("malformed signature nonce or key id")
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
        states = self._verifying_states(caller, kid)
        if states is None:
            raise SignatureError(f"no key {kid!r} for calls from {caller!r}")
        identity = headers.get(HEADER_IDENTITY, "")
        message = signed_message(
            method, target, timestamp, caller, self.service, kid, nonce, identity, digest
        )
        if not hmac.compare_digest(_hmac(states, message.encode()), signature):
            raise SignatureError("bad service signature")
        return SignedCaller(caller, nonce, sent_at)

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
        """The calling service's name (signature only), or :class:`SignatureError`."""
        return self.verify_request(
            method, target, headers, body, require_body_digest=require_body_digest, now=now
        ).service
