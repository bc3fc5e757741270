"""The rules of sessions: login, refresh rotation with replay detection, single sign-on, logout."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError

from auth_jwt.keys.ring import KeyRing
from auth_jwt.metrics import FAILED_LOGINS, TOKENS_ISSUED, failure_reason
from auth_jwt.models import AuthSession, RefreshToken, utcnow
from auth_jwt.peers import DEFAULT_TENANT, TenantDirectory, UserDirectory, VerifiedUser
from auth_jwt.sessions.admission import LoginLane
from auth_jwt.sessions.exceptions import (
    ConcurrentLogin,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionEnded,
    SessionNotFound,
    TenantRefused,
)
from auth_jwt.sessions.limits import AuthLimits
from auth_jwt.sessions.lockout import LoginGuard
from auth_jwt.sessions.repository import SessionRepository
from auth_jwt.sessions.revocations import RevocationNotices
from auth_jwt.sessions.schemas import (
    LoginRequest,
    RevocationEntry,
    RevocationFeed,
    TokenPair,
)
from auth_jwt.sessions.tokens import mint_access_token, new_refresh_token, refresh_token_hash
from edgelib.events import NEW_SIGN_IN, EventPublisher, PlatformEvent
from edgelib.identity import Identity
from edgelib.ratelimit import RequestLimiter

logger = logging.getLogger("auth_jwt.sessions")

ISSUED_ACCESS = TOKENS_ISSUED.labels("access")
ISSUED_REFRESH = TOKENS_ISSUED.labels("refresh")

#: Revocations are kept this long past the access-token lifetime (clock skew, leeway).
REVOCATION_MARGIN = 60


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    issuer: str
    audience: str
    access_ttl: int
    refresh_ttl: int
    session_max_age: int


@dataclass(frozen=True, slots=True)
class Client:
    """Where a login comes from."""

    address: str | None
    user_agent: str | None


class SessionService:
    def __init__(
        self,
        repository: SessionRepository,
        *,
        policy: TokenPolicy,
        keys: KeyRing,
        users: UserDirectory,
        guard: LoginGuard,
        limiter: RequestLimiter,
        limits: AuthLimits,
        notices: RevocationNotices,
        events: EventPublisher | None = None,
        tenants: TenantDirectory | None = None,
        lane: LoginLane | None = None,
    ) -> None:
        self.repository = repository
        self.lane = lane or LoginLane(0, 0)
        self.tenants = tenants
        self.policy = policy
        self.keys = keys
        self.users = users
        self.guard = guard
        self.limiter = limiter
        self.limits = limits
        self.notices = notices
        self.events = events

    async def login(self, request: LoginRequest, client: Client) -> TokenPair:
        """Check the credentials, end the previous session of this client type, start one."""
        try:
            return await self._login(request, client)
        except Exception as exc:
            FAILED_LOGINS.labels(failure_reason(exc)).inc()
            raise

    async def _login(self, request: LoginRequest, client: Client) -> TokenPair:
        # auth-jwt's own work runs in the login lane; the wait for sv-region and sv-user
        # (the hashing) holds no place in it, so the lane bounds the loop's login work
        # without leaving sv-user's hashing threads idle. Past the check a login is
        # never refused by the lane: its hash is already paid for.
        async with self.lane.slot():
            await self.limiter.hit(
                self.limits.login_address, client.address, "logins from this address"
            )
            await self.guard.check(request.username, client.address)
        try:
            user = await self.users.verify(request.username, request.password)
        except InvalidCredentials:
            async with self.lane.slot(refuse=False):
                await self.guard.failed(request.username, client.address)
            raise
        async with self.lane.slot(refuse=False):
            return await self._start_session(request, client, user)

    async def _start_session(
        self, request: LoginRequest, client: Client, user: VerifiedUser
    ) -> TokenPair:
        await self.guard.succeeded(request.username, client.address)
        tenant = request.tenant or DEFAULT_TENANT
        await self._check_tenant(tenant, user.id)

        now = utcnow()
        previous = await self.repository.unrevoked(user.id, request.client_type)
        await self._revoke(previous, reason="superseded", now=now)
        session = AuthSession(
            id=str(uuid.uuid4()),
            user_id=user.id,
            username=user.username,
            region=user.region,
            client_type=request.client_type,
            created_at=now,
            expires_at=now + timedelta(seconds=self.policy.session_max_age),
            user_agent=(client.user_agent or "")[:255] or None,
            address=client.address,
            tenant=tenant,
        )
        refresh = new_refresh_token()
        try:
            await self.repository.add(session, self._refresh_row(session, refresh, now))
        except IntegrityError as exc:
            # The partial unique index: another login of this client type just won.
            raise ConcurrentLogin("another login of this client type is in progress") from exc
        logger.info(
            "login",
            extra={
                "user_id": user.id,
                "session_id": session.id,
                "client_type": session.client_type,
            },
        )
        pair = await self._pair(session, refresh, now)
        await self._announce_new_client_type(session, now)
        return pair

    async def _announce_new_client_type(self, session: AuthSession, now: datetime) -> None:
        """Tell the user (through sv-notice) of a sign-in on another client type than theirs."""
        if self.events is None:
            return
        live = await self.live(session.user_id)
        if not any(s.client_type != session.client_type for s in live):
            return
        self.events.publish(
            PlatformEvent(
                type=NEW_SIGN_IN,
                user_id=session.user_id,
                region=session.region,
                id=f"new-sign-in:{session.id}",
                source="auth-jwt",
                data={
                    "client_type": session.client_type,
                    "signed_in_at": now.isoformat(),
                    "ip": session.address or "",
                },
            )
        )

    async def refresh(self, token: str, client: Client, tenant: str | None = None) -> TokenPair:
        """Exchange a refresh token for new tokens; a replayed one ends its session.

        With ``tenant``, the session switches to that tenant (a member's only)."""
        await self.limiter.hit(
            self.limits.refresh_address, client.address, "refreshes from this address"
        )
        now = utcnow()
        # Every await below is a turn of the event loop the refresh shares with logins:
        # the token and its session come in one query, and the account's counter is
        # counted while the token is marked used (a refusal rolls that back).
        found = await self.repository.refresh_token_and_session(refresh_token_hash(token))
        if found is None:
            raise InvalidRefreshToken("unknown refresh token")
        row, session = found
        if session is None or session.revoked_at is not None or row.used_at is not None:
            if session is not None:
                await self._hit_account_limit(session)
            used = False
        else:
            used = await self._use_within_account_limit(row, session, now)
        if session is None or session.revoked_at is not None:
            raise SessionEnded("the session of this refresh token has ended")
        if not used:
            await self._revoke([session], reason="refresh-token-reused", now=now)
            logger.warning(
                "refresh token replayed; session revoked", extra={"session_id": session.id}
            )
            raise RefreshTokenReused("this refresh token was already used; the session has ended")
        if row.expires_at <= now or session.expires_at <= now:
            raise SessionEnded("the session has expired; log in again")
        # A tenant disabled, or a membership ended, since the login: no new tokens in it.
        await self._check_tenant(tenant or session.tenant, session.user_id)
        if tenant is not None and tenant != session.tenant:
            logger.info(
                "tenant switched",
                extra={"session_id": session.id, "from": session.tenant, "to": tenant},
            )
            session.tenant = tenant
        session.refreshed_at = now
        refresh = new_refresh_token()
        await self.repository.add(self._refresh_row(session, refresh, now))
        return await self._pair(session, refresh, now)

    async def _hit_account_limit(self, session: AuthSession) -> None:
        await self.limiter.hit(
            self.limits.refresh_account, session.user_id, "refreshes of this account"
        )

    async def _use_within_account_limit(
        self, row: RefreshToken, session: AuthSession, now: datetime
    ) -> bool:
        """Count the refresh against the account and mark the token used, at once.

        Both always finish before this returns (the transaction is not touched while a
        statement runs); a refusal from the limit is raised and rolls the mark back, so a
        refused refresh leaves its token unused.
        """
        limited, used = await asyncio.gather(
            self._hit_account_limit(session),
            self.repository.use_refresh_token(row.id, now),
            return_exceptions=True,
        )
        for outcome in (limited, used):
            if isinstance(outcome, BaseException):
                raise outcome
        return bool(used)

    async def _check_tenant(self, tenant: str, user_id: str) -> None:
        """Return when ``user_id`` may hold tokens in ``tenant``; else ``403 tenant-refused``."""
        if tenant == DEFAULT_TENANT:
            return
        if self.tenants is None or not (await self.tenants.status(tenant, user_id)).usable:
            raise TenantRefused(tenant)

    async def logout(self, caller: Identity) -> None:
        """End the caller's current session."""
        session = await self.repository.get(caller.session_id)
        if session is not None and session.revoked_at is None:
            await self._revoke([session], reason="logout", now=utcnow())

    async def end(self, caller: Identity, session_id: str) -> None:
        """End one of the caller's own sessions."""
        session = await self.repository.get(session_id)
        if session is None or session.user_id != caller.user_id:
            raise SessionNotFound(f"no session {session_id} of yours")
        if session.revoked_at is None:
            await self._revoke([session], reason="logout", now=utcnow())

    async def end_for(self, user_id: str, session_id: str, *, by: Identity) -> None:
        """An administrator ends one session of ``user_id`` (already ended: nothing to do)."""
        session = await self.repository.get(session_id)
        if session is None or session.user_id != user_id:
            raise SessionNotFound(f"no session {session_id} of user {user_id}")
        if session.revoked_at is None:
            logger.info(
                "session revoked by an administrator",
                extra={"session": session_id, "user": user_id, "by": by.user_id},
            )
            await self._revoke([session], reason="admin", now=utcnow())

    async def revoke_user(self, user_id: str, *, keep: str | None, reason: str) -> int:
        """End every session of a user but ``keep``; returns how many ended."""
        sessions = [s for s in await self.repository.unrevoked(user_id) if s.id != keep]
        await self._revoke(sessions, reason=reason, now=utcnow())
        return len(sessions)

    async def live(self, user_id: str) -> list[AuthSession]:
        now = utcnow()
        return [s for s in await self.repository.unrevoked(user_id) if s.expires_at > now]

    async def feed(self, since: float) -> RevocationFeed:
        """Revocations made since ``since`` (Unix time) whose tokens may still be live."""
        now = utcnow()
        start = datetime.fromtimestamp(min(max(0.0, since), now.timestamp()), UTC)
        records = await self.repository.revocations_since(start, now)
        return RevocationFeed(
            now=now.timestamp(),
            revocations=[
                RevocationEntry(sid=r.session_id, exp=r.expires_at.timestamp()) for r in records
            ],
        )

    async def _revoke(self, sessions: list[AuthSession], *, reason: str, now: datetime) -> None:
        if not sessions:
            return
        expires = now + timedelta(seconds=self.policy.access_ttl + REVOCATION_MARGIN)
        records = await self.repository.revoke(sessions, reason=reason, now=now, expires_at=expires)
        entries = [RevocationEntry(sid=r.session_id, exp=r.expires_at.timestamp()) for r in records]

        async def announce() -> None:
            await self.notices.publish(entries)

        self.repository.on_commit(announce)
        logger.info(
            "sessions revoked", extra={"sessions": [s.id for s in sessions], "reason": reason}
        )

    def _refresh_row(self, session: AuthSession, token: str, now: datetime) -> RefreshToken:
        return RefreshToken(
            id=str(uuid.uuid4()),
            session_id=session.id,
            token_hash=refresh_token_hash(token),
            created_at=now,
            expires_at=min(session.expires_at, now + timedelta(seconds=self.policy.refresh_ttl)),
        )

    async def _pair(self, session: AuthSession, refresh: str, now: datetime) -> TokenPair:
        key = await self.keys.signing_key()
        access = mint_access_token(
            key,
            session,
            issuer=self.policy.issuer,
            audience=self.policy.audience,
            ttl=self.policy.access_ttl,
            now=now,
        )
        ISSUED_ACCESS.inc()
        ISSUED_REFRESH.inc()
        return TokenPair(
            access_token=access, refresh_token=refresh, expires_in=self.policy.access_ttl
        )
