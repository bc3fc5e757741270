"""Verify JWT access tokens against a JWKS document (RFC 7517, RFC 8725, RFC 9068).

:class:`JwksCache` holds the issuer's public keys by ``kid``; it refetches the
document when a token names an unknown ``kid`` (at most once per
``min_refetch_interval``, so forged ``kid`` values cannot flood the issuer) and
when its copy is older than ``max_age``. :class:`TokenVerifier` checks one token:
an asymmetric algorithm from the allowlist that matches its key, the ``typ``
header, the signature, then ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` with a
small leeway. Every refusal is a :class:`TokenError`; PyJWT's own errors never
leave this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK

logger = logging.getLogger("edgelib.jwt")

#: Asymmetric signature algorithms only: ``none`` and the HMAC family can never pass.
DEFAULT_ALGORITHMS = frozenset({"ES256", "EdDSA"})
ACCESS_TOKEN_TYPE = "at+jwt"

JwksFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


class TokenError(Exception):
    """A token was refused; the message is safe to show to the caller."""


class InvalidToken(TokenError):
    """Malformed, wrongly signed, or carrying the wrong header or claims."""


class ExpiredToken(TokenError):
    """Well formed and signed, but past its ``exp`` (plus leeway)."""


class UnknownKey(TokenError):
    """Signed with a ``kid`` the issuer's JWKS does not publish."""


def parse_jwks(document: Mapping[str, Any], algorithms: Collection[str]) -> dict[str, PyJWK]:
    """The usable signing keys of a JWKS document, by ``kid``; others are skipped."""
    keys: dict[str, PyJWK] = {}
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("a JWKS document needs a 'keys' list")
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid, alg = entry.get("kid"), entry.get("alg")
        if not isinstance(kid, str) or not kid or alg not in algorithms:
            continue
        if entry.get("use", "sig") != "sig" or "d" in entry:
            # Never trust a key meant for encryption, or one leaking its private part.
            continue
        try:
            keys[kid] = PyJWK(entry)
        except jwt.PyJWTError as exc:
            logger.warning("skipping unusable JWK", extra={"kid": kid, "error": str(exc)})
    return keys


class JwksCache:
    """Public keys by ``kid``, fetched on demand from the issuer."""

    def __init__(
        self,
        fetch: JwksFetcher,
        *,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        min_refetch_interval: float = 5.0,
        max_age: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.algorithms = frozenset(algorithms)
        self.min_refetch_interval = min_refetch_interval
        self.max_age = max_age
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        # When a refetch last failed to find the kid asked for: only such misses count
        # against the rate limit, so a rotation is picked up at once in normal running.
        self._missed_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    async def refresh(self) -> bool:
        """Fetch the document now; on failure keep the keys already known."""
        async with self._lock:
            return await self._refresh_locked()

    async def _refresh_locked(self) -> bool:
        self._attempted_at = self._clock()
        self.fetches += 1
        try:
            keys = parse_jwks(await self._fetch(), self.algorithms)
        except Exception as exc:
            logger.warning("JWKS fetch failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return False
        self._keys = keys
        self._fetched_at = self._clock()
        return True

    def _cooled(self, since: float | None, now: float) -> bool:
        return since is None or now - since >= self.min_refetch_interval

    async def key_for(self, kid: str) -> PyJWK:
        """The key named ``kid``, refetching (rate-limited) when unknown or stale."""
        now = self._clock()
        key = self._keys.get(kid)
        fresh = self._fetched_at is not None and now - self._fetched_at < self.max_age
        if key is not None and fresh:
            return key
        async with self._lock:
            # Another request may have refetched while this one waited for the lock.
            now = self._clock()
            key = self._keys.get(kid)
            fresh = self._fetched_at is not None and now - self._fetched_at < self.max_age
            if key is None and self._cooled(self._missed_at, now):
                await self._refresh_locked()
                key = self._keys.get(kid)
                if key is None:
                    self._missed_at = self._clock()
            elif key is not None and not fresh and self._cooled(self._attempted_at, now):
                if await self._refresh_locked():
                    key = self._keys.get(kid)  # gone from the issuer's JWKS: refused
        if key is None:
            raise UnknownKey("the token was signed by a key the issuer does not publish")
        return key


@dataclass(frozen=True, slots=True)
class _Verified:
    claims: dict[str, Any]
    expires: float


class TokenVerifier:
    """Verifies access tokens of one issuer for one audience.

    Tokens already verified are remembered (bounded, until they expire), so a
    client's repeated calls cost a dictionary lookup instead of a signature check.
    """

    def __init__(
        self,
        keys: JwksCache,
        *,
        issuer: str,
        audience: str,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        token_type: str = ACCESS_TOKEN_TYPE,
        leeway: float = 5.0,
        required_claims: Collection[str] = ("exp", "iat", "sub", "jti"),
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unsafe = {a for a in algorithms if a == "none" or a.startswith("HS")}
        if unsafe:
            raise ValueError(f"refusing symmetric or empty algorithms: {sorted(unsafe)}")
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.algorithms = frozenset(algorithms)
        self.token_types = {token_type.lower(), f"application/{token_type}".lower()}
        self.leeway = leeway
        self.required_claims = list(required_claims)
        self.cache_size = cache_size
        self._clock = clock
        self._verified: dict[str, _Verified] = {}

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or :class:`TokenError` saying why it is refused."""
        cached = self._verified.get(token)
        if cached is not None:
            if self._clock() <= cached.expires + self.leeway:
                return cached.claims
            del self._verified[token]
            raise ExpiredToken("the token has expired")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("the token is not a well-formed JWT") from exc
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise InvalidToken(f"algorithm {alg!r} is not accepted")
        if str(header.get("typ", "")).lower() not in self.token_types:
            raise InvalidToken("the token is not an access token (typ)")
        if "crit" in header:
            raise InvalidToken("critical header parameters are not supported")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no key (kid)")
        key = await self.keys.key_for(kid)
        if key.algorithm_name != alg:
            raise InvalidToken("the token's algorithm does not match its key")
        claims = self._decode(token, key, alg)
        self._remember(token, claims)
        return claims

    def _decode(self, token: str, key: PyJWK, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": self.required_claims, "strict_aud": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise ExpiredToken("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("the token is not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("the token is meant for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("the token comes from another issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"the token lacks the {exc.claim!r} claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("the token's signature does not verify") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("the token is not valid") from exc
        return claims

    def _remember(self, token: str, claims: dict[str, Any]) -> None:
        if self.cache_size <= 0:
            return
        if len(self._verified) >= self.cache_size:
            now = self._clock()
            for old in [t for t, v in self._verified.items() if v.expires + self.leeway < now]:
                del self._verified[old]
            # Drop the oldest tenth at once, so a full cache is not rescanned per token.
            while len(self._verified) >= self.cache_size * 0.9:
                del self._verified[next(iter(self._verified))]
        self._verified[token] = _Verified(claims, float(claims["exp"]))
