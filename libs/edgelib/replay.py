"""The replay cache: a signed request's nonce is accepted once inside its time window.

A nonce is remembered (``SET NX`` with a TTL on the backend: Redis, shared by every
instance of the service; the in-process backend locally) for twice the signature's
allowed clock skew, which covers every moment its timestamp is still accepted.
"""

from __future__ import annotations

from edgelib.backends import Backend
from edgelib.signing import SignatureError, SignedCaller

KEY_PREFIX = "edge:nonce:"


class ReplayCache:
    """Remembers the nonces of verified requests to ``service``; refuses a second use."""

    def __init__(self, backend: Backend, service: str, *, max_skew: float) -> None:
        self.backend = backend
        self.prefix = f"{KEY_PREFIX}{service}:"
        self.ttl = 2 * max_skew + 1

    async def first_use(self, caller: SignedCaller) -> None:
        """Record ``caller``'s nonce; :class:`SignatureError` when it was seen before.

        Raises ``BackendError`` when the backend is away (answered 503: without the
        cache a replay could not be told apart).
        """
        key = f"{self.prefix}{caller.service}:{caller.nonce}"
        if not await self.backend.set(key, b"1", ttl=self.ttl, only_if_absent=True):
            raise SignatureError("replayed service signature")
