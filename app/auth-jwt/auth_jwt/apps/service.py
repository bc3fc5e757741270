"""The rules of apps: creation with a secret shown once, disabling, rotation with an
overlap window, and the client-credentials grant. Never commits: the session dependency does.

Secrets are 256 random bits, so a single SHA-256 is enough to store them (as for refresh
tokens): nobody can guess such a secret from its hash, and checking costs microseconds.
A slow password hash (argon2) protects low-entropy human passwords; see doc/decisions.md.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from auth_jwt.apps.exceptions import (
    AppNotFound,
    OutsideTenant,
    TenantUnusable,
    invalid_client,
    unauthorized_client,
)
from auth_jwt.apps.repository import AppRepository
from auth_jwt.keys.ring import KeyRing
from auth_jwt.models import App, AppSecret, utcnow
from auth_jwt.peers import DEFAULT_TENANT, TenantDirectory
from auth_jwt.sessions.revocations import RevocationNotices
from auth_jwt.sessions.schemas import RevocationEntry
from auth_jwt.sessions.service import REVOCATION_MARGIN, TokenPolicy
from auth_jwt.sessions.tokens import ACCESS_TOKEN_TYPE
from edgelib.identity import Identity

logger = logging.getLogger("auth_jwt.apps")

CLIENT_ID = re.compile(r"^[A-Za-z0-9_]{1,32}$")
#: The ``client_type`` claim of an app's tokens (users' are web, app or mini).
APP_CLIENT_TYPE = "service"


def new_client_id() -> str:
    """A Casbin-safe subject name (letters, digits, ``_``) that no user id can equal."""
    return "app_" + secrets.token_hex(8)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int


class AppService:
    def __init__(
        self,
        repository: AppRepository,
        *,
        tenants: TenantDirectory,
        policy: TokenPolicy,
        keys: KeyRing,
        notices: RevocationNotices,
        region: str,
    ) -> None:
        self.repository = repository
        self.tenants = tenants
        self.policy = policy
        self.keys = keys
        self.notices = notices
        self.region = region

    # --- administration ----------------------------------------------------------

    @staticmethod
    def _scope(caller: Identity, tenant: str) -> None:
        if caller.tenant != DEFAULT_TENANT and caller.tenant != tenant:
            raise OutsideTenant(tenant)

    async def create(self, caller: Identity, name: str, tenant: str | None) -> tuple[App, str]:
        """A new app of ``tenant`` (the caller's by default) and its first secret."""
        tenant = tenant or caller.tenant
        self._scope(caller, tenant)
        status = await self.tenants.status(tenant)
        if not status.exists or status.disabled:
            raise TenantUnusable(tenant)
        now = utcnow()
        app = App(
            client_id=new_client_id(),
            tenant=tenant,
            name=name,
            disabled=False,
            token_sid=str(uuid.uuid4()),
            created_by=caller.user_id,
            created_at=now,
            updated_at=now,
        )
        secret = new_secret()
        await self.repository.add(app, self._secret_row(app, secret, now))
        logger.info(
            "app created",
            extra={"client_id": app.client_id, "tenant": tenant, "actor": caller.user_id},
        )
        return app, secret

    async def get(self, caller: Identity, client_id: str) -> App:
        """The app, when the caller's tenant may see it; another tenant's is a 404."""
        app = await self.repository.get(client_id)
        if app is None or (caller.tenant not in (DEFAULT_TENANT, app.tenant)):
            raise AppNotFound(client_id)
        return app

    async def of_tenant(self, caller: Identity, tenant: str | None) -> list[App]:
        if caller.tenant != DEFAULT_TENANT:
            self._scope(caller, tenant or caller.tenant)
            tenant = caller.tenant
        return await self.repository.of_tenant(tenant)

    async def update(
        self, caller: Identity, client_id: str, *, name: str | None, disabled: bool | None
    ) -> App:
        """Rename, disable or enable. Disabling also ends the app's live access tokens."""
        app = await self.get(caller, client_id)
        now = utcnow()
        if name is not None:
            app.name = name
        if disabled is True and not app.disabled:
            expires = now + timedelta(seconds=self.policy.access_ttl + REVOCATION_MARGIN)
            await self.repository.revoke_tokens(app, now=now, expires_at=expires)
            entries = [RevocationEntry(sid=app.token_sid, exp=expires.timestamp())]

            async def announce() -> None:
                await self.notices.publish(entries)

            self.repository.on_commit(announce)
            # Tokens issued after a re-enable carry a new sid, which is not revoked.
            app.token_sid = str(uuid.uuid4())
        if disabled is not None:
            app.disabled = disabled
        app.updated_at = now
        logger.info(
            "app updated",
            extra={"client_id": app.client_id, "disabled": app.disabled, "actor": caller.user_id},
        )
        return app

    async def rotate(self, caller: Identity, client_id: str, overlap: int) -> tuple[str, datetime]:
        """A new secret; the earlier ones work ``overlap`` seconds more, then never again."""
        app = await self.get(caller, client_id)
        now = utcnow()
        until = now + timedelta(seconds=overlap)
        await self.repository.expire_secrets(app.client_id, until)
        secret = new_secret()
        await self.repository.add_secret(self._secret_row(app, secret, now))
        logger.info(
            "app secret rotated",
            extra={"client_id": app.client_id, "overlap": overlap, "actor": caller.user_id},
        )
        return secret, until

    @staticmethod
    def _secret_row(app: App, secret: str, now: datetime) -> AppSecret:
        return AppSecret(
            id=str(uuid.uuid4()),
            client_id=app.client_id,
            secret_hash=secret_hash(secret),
            created_at=now,
            expires_at=None,
        )

    # --- the client-credentials grant ----------------------------------------------

    async def authenticate(self, client_id: str, secret: str) -> App:
        """The app these credentials open, or ``invalid_client``."""
        now = utcnow()
        # Only a well-formed id reaches the database (no NUL bytes, no 10 kB keys).
        app = await self.repository.get(client_id) if CLIENT_ID.match(client_id) else None
        # Hashed either way, so an unknown client id costs as much as a wrong secret.
        presented = secret_hash(secret)
        if app is None:
            raise invalid_client()
        live = await self.repository.live_secrets(app.client_id, now)
        if not any(hmac.compare_digest(presented, s.secret_hash) for s in live):
            raise invalid_client()
        if app.disabled:
            raise invalid_client("this client is disabled")
        return app

    async def issue(self, app: App) -> IssuedToken:
        """An access token for the app, acting in its tenant with its own permissions."""
        status = await self.tenants.status(app.tenant)
        if not status.exists or status.disabled:
            raise unauthorized_client("the client's tenant is disabled")
        now = utcnow()
        issued = int(now.timestamp())
        key = await self.keys.signing_key()
        claims = {
            "iss": self.policy.issuer,
            "aud": self.policy.audience,
            "sub": app.client_id,
            "client_id": app.client_id,
            "sid": app.token_sid,
            "tenant": app.tenant,
            "region": self.region,
            "client_type": APP_CLIENT_TYPE,
            "preferred_username": app.client_id,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.policy.access_ttl,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(
            claims,
            key.private_key,
            algorithm=key.alg,
            headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
        )
        logger.info("app token issued", extra={"client_id": app.client_id, "tenant": app.tenant})
        return IssuedToken(token, self.policy.access_ttl)
