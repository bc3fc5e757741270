"""SQL of sessions, refresh tokens and revocations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_jwt.models import AuthSession, RefreshToken, Revocation
from edgelib.uow import after_commit


class SessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def on_commit(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` once this request's transaction has committed."""
        after_commit(self.session, action)

    async def get(self, session_id: str) -> AuthSession | None:
        return await self.session.get(AuthSession, session_id)

    async def unrevoked(self, user_id: str, client_type: str | None = None) -> list[AuthSession]:
        """The user's sessions not yet revoked (expired ones included), oldest first."""
        query = select(AuthSession).where(
            AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
        )
        if client_type is not None:
            query = query.where(AuthSession.client_type == client_type)
        return list((await self.session.execute(query.order_by(AuthSession.created_at))).scalars())

    async def add(self, *rows: AuthSession | RefreshToken) -> None:
        self.session.add_all(rows)
        await self.session.flush()

    async def refresh_token(self, token_hash: str) -> RefreshToken | None:
        result = await self.session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )
        return result.scalar_one_or_none()

    async def refresh_token_and_session(
        self, token_hash: str
    ) -> tuple[RefreshToken, AuthSession | None] | None:
        """The refresh token and its session in one round trip (None: no such token)."""
        result = await self.session.execute(
            select(RefreshToken, AuthSession)
            .outerjoin(AuthSession, AuthSession.id == RefreshToken.session_id)
            .where(RefreshToken.token_hash == token_hash)
        )
        row = result.one_or_none()
        return None if row is None else (row[0], row[1])

    async def use_refresh_token(self, token_id: str, now: datetime) -> bool:
        """Mark the token used; False when another request used it first."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def revoke(
        self, sessions: list[AuthSession], *, reason: str, now: datetime, expires_at: datetime
    ) -> list[Revocation]:
        records = []
        for auth_session in sessions:
            auth_session.revoked_at = now
            auth_session.revoke_reason = reason
            records.append(
                Revocation(
                    session_id=auth_session.id,
                    user_id=auth_session.user_id,
                    reason=reason,
                    revoked_at=now,
                    expires_at=expires_at,
                )
            )
        self.session.add_all(records)
        await self.session.flush()
        return records

    async def revocations_since(self, since: datetime, now: datetime) -> list[Revocation]:
        result = await self.session.execute(
            select(Revocation)
            .where(Revocation.revoked_at >= since, Revocation.expires_at > now)
            .order_by(Revocation.id)
        )
        return list(result.scalars())

    async def purge(self, now: datetime) -> None:
        """Forget what can no longer matter: expired revocations, tokens and sessions.

        Used refresh tokens stay until they expire, so a replay is still recognised.
        """
        await self.session.execute(delete(Revocation).where(Revocation.expires_at <= now))
        await self.session.execute(delete(RefreshToken).where(RefreshToken.expires_at <= now))
        await self.session.execute(delete(AuthSession).where(AuthSession.expires_at <= now))
