"""SQL of the signing keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_jwt.models import SigningKey


class KeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def published(self, now: datetime) -> list[SigningKey]:
        """Keys still signing, or retired but not yet past ``publish_until``; newest first."""
        result = await self.session.execute(
            select(SigningKey)
            .where(or_(SigningKey.retired_at.is_(None), SigningKey.publish_until > now))
            .order_by(SigningKey.created_at.desc())
        )
        return list(result.scalars())

    async def add(self, key: SigningKey) -> None:
        self.session.add(key)
        await self.session.flush()

    async def retire_all_but(self, kid: str, *, now: datetime, publish_until: datetime) -> int:
        result = await self.session.execute(
            update(SigningKey)
            .where(SigningKey.retired_at.is_(None), SigningKey.kid != kid)
            .values(retired_at=now, publish_until=publish_until)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def purge(self, now: datetime) -> int:
        """Delete retired keys no longer published."""
        result = await self.session.execute(
            delete(SigningKey).where(
                SigningKey.retired_at.is_not(None), SigningKey.publish_until <= now
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
