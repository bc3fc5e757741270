"""Authentication at the gateway: bearer access tokens verified locally.

The token is checked against auth-jwt's JWKS (cached, refetched on an unknown
``kid`` at most once per few seconds), with the algorithm allowlist, ``typ``,
``iss``, ``aud``, ``exp``/``nbf`` checks of :mod:`edgelib.jwt`; then its session is
looked up in the revoked set (:mod:`gateway_api.security.sessions`). The per-request cost is
a signature check on a token's first use and dictionary lookups after that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

import aiohttp

from edgelib.backends import Backend
from edgelib.identity import DEFAULT_TENANT, Identity
from edgelib.jwt import JwksCache, TokenError, TokenVerifier
from edgelib.problems import Unauthorized
from edgelib.signing import ServiceSigner
from gateway_api.config import AuthnSettings
from gateway_api.problems import InvalidAccessToken, RevocationsUnavailable, SessionRevoked
from gateway_api.security.control import ControlPlaneService
from gateway_api.security.sessions import RevokedSessions
from gateway_api.topology import Topology

logger = logging.getLogger("gateway.authn")


_CHALLENGE: Final = "Bearer"


def authorization(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The raw value of the request's ``Authorization`` header, if it has one."""
    for name, value in headers:
        if name == b"authorization":
            return value
    return None


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if there is one."""
    value = authorization(headers)
    if value is None:
        return None
    scheme, _, token = value.decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token and " " not in token:
        return token
    return None


def _claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidAccessToken(
            f"the token lacks the {name!r} claim",
            headers={"WWW-Authenticate": f'{_CHALLENGE} error="invalid_token"'},
        )
    return value


def _optional_claim(claims: Mapping[str, Any], name: str) -> str:
    """A claim tokens may leave out (``tenant``, ``client_id``): empty when absent."""
    value = claims.get(name, "")
    if not isinstance(value, str):
        raise InvalidAccessToken(
            f"the token's {name!r} claim is not a string",
            headers={"WWW-Authenticate": f'{_CHALLENGE} error="invalid_token"'},
        )
    return value


class AuthJwt(ControlPlaneService):
    """auth-jwt as the gateway calls it: over the gateway's aiohttp session, signed."""

    name = "auth-jwt (topology or GATEWAY_AUTH_JWT_URL)"
    destination = "auth-jwt"

    def __init__(self, base_urls: list[str], signer: ServiceSigner, *, timeout: float = 2.0):
        super().__init__(base_urls, signer, timeout=timeout)

    async def jwks(self) -> Mapping[str, Any]:
        return await self.get_json("/.well-known/jwks.json")

    async def revocations(self, since: float) -> Mapping[str, Any]:
        return await self.get_json(f"/internal/revocations?since={since:.3f}")


#: Callers kept per verified ``Authorization`` header before the cache starts over.
_KNOWN_CALLERS: Final = 50_000
#: Known callers are found by this many last bytes of their header (then compared whole).
_KEY_BYTES: Final = 32


class Authenticator:
    """Turns a request's bearer token into the caller's :class:`Identity`, or a 401."""

    def __init__(
        self,
        verifier: TokenVerifier,
        revoked: RevokedSessions,
        *,
        auth_jwt: AuthJwt | None = None,
    ) -> None:
        self.verifier = verifier
        self.revoked = revoked
        self.auth_jwt = auth_jwt
        #: Verified callers by the last bytes of their ``Authorization`` header (the
        #: token's signature: cheap to hash): (whole header, identity, its encoded
        #: ``x-edge-identity`` value, valid until).
        self._known: dict[bytes, tuple[bytes, Identity, bytes, float]] = {}

    @classmethod
    def for_gateway(
        cls,
        topology: Topology,
        signer: ServiceSigner,
        settings: AuthnSettings,
        *,
        backend: Backend | None,
    ) -> Authenticator:
        """Wired to auth-jwt (from the topology unless configured) and the event backend."""
        if settings.auth_jwt_url:
            urls = [u.strip() for u in settings.auth_jwt_url.split(",") if u.strip()]
        else:
            urls = [i.url for i in topology.instances if i.service == "auth-jwt"]
        auth_jwt = AuthJwt(urls, signer)
        algorithms = [a.strip() for a in settings.jwt_algorithms.split(",") if a.strip()]
        keys = JwksCache(
            auth_jwt.jwks,
            algorithms=algorithms,
            min_refetch_interval=settings.jwks_min_refetch,
            max_age=settings.jwks_max_age,
        )
        verifier = TokenVerifier(
            keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            algorithms=algorithms,
            leeway=settings.jwt_leeway,
        )
        revoked = RevokedSessions(
            auth_jwt.revocations,
            backend=backend,
            channel=settings.revocation_channel,
            poll_interval=settings.revocation_poll_interval,
        )
        return cls(verifier, revoked, auth_jwt=auth_jwt)

    async def start(self, session: aiohttp.ClientSession | None = None) -> None:
        """Fetch the keys and the revoked sessions, then keep the latter current."""
        if self.auth_jwt is not None:
            self.auth_jwt.session = session
        await self.verifier.keys.refresh()
        await self.revoked.start()

    async def stop(self) -> None:
        await self.revoked.stop()

    def known(self, headers: list[tuple[bytes, bytes]]) -> tuple[Identity, bytes] | None:
        """The caller and its encoded identity, when this exact header was verified before.

        The per-request fast path: one dictionary lookup, a comparison of the whole
        header, the expiry and the revoked set. None means "ask :meth:`authenticate`",
        which verifies (or refuses) the token and remembers the answer; an expired or
        revoked caller is never answered from here.
        """
        value = authorization(headers)
        if value is None:
            return None
        known = self._known.get(value[-_KEY_BYTES:])
        if known is None or known[0] != value:
            return None
        _, identity, encoded, valid_until = known
        if time.time() > valid_until or self.revoked.is_revoked(identity.session_id):
            return None
        return identity, encoded

    async def authenticate(self, scope: MutableMapping[str, Any]) -> Identity:
        """The verified caller, or :class:`Unauthorized` with a ``WWW-Authenticate`` challenge."""
        headers = scope["headers"]
        token = bearer_token(headers)
        if token is None:
            raise Unauthorized(
                "this route needs an access token (Authorization: Bearer)",
                headers={"WWW-Authenticate": _CHALLENGE},
            )
        if not self.revoked.loaded:
            # Until the revoked sessions are known, a logged-out token would pass.
            raise RevocationsUnavailable(
                "the gateway has not loaded the revoked sessions yet", headers={"Retry-After": "1"}
            )
        try:
            claims = await self.verifier.verify(token)
        except TokenError as exc:
            raise InvalidAccessToken(
                str(exc), headers={"WWW-Authenticate": f'{_CHALLENGE} error="invalid_token"'}
            ) from None
        identity = Identity(
            user_id=_claim(claims, "sub"),
            username=_claim(claims, "preferred_username"),
            region=_claim(claims, "region"),
            session_id=_claim(claims, "sid"),
            client_type=_claim(claims, "client_type"),
            tenant=_optional_claim(claims, "tenant") or DEFAULT_TENANT,
            app=_optional_claim(claims, "client_id"),
        )
        if self.revoked.is_revoked(identity.session_id):
            raise SessionRevoked(
                "this session has ended (logout, a newer login, or a revoked refresh token)",
                headers={"WWW-Authenticate": f'{_CHALLENGE} error="invalid_token"'},
            )
        value = authorization(headers)
        if value is not None:
            if len(self._known) >= _KNOWN_CALLERS:
                self._known.clear()
            # Known until the token's expiry plus the verifier's leeway, as verify() has it.
            valid_until = float(claims["exp"]) + self.verifier.leeway
            encoded = identity.encode().encode()
            self._known[value[-_KEY_BYTES:]] = (value, identity, encoded, valid_until)
        return identity
