"""SQL for the notices a user sees in the inbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, RowMapping, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sv_notice.models import notices


class InboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _mine(self, user_id: str) -> tuple[ColumnElement[bool], ...]:
        return (notices.c.user_id == user_id, notices.c.in_inbox.is_(True))

    async def page(
        self,
        user_id: str,
        *,
        limit: int,
        before: tuple[datetime, str] | None = None,
        unread_only: bool = False,
    ) -> Sequence[RowMapping]:
        """Newest first; ``before`` is the (created_at, id) of the last row already seen."""
        query = select(notices).where(*self._mine(user_id))
        if unread_only:
            query = query.where(notices.c.read_at.is_(None))
        if before is not None:
            at, notice_id = before
            query = query.where(
                or_(
                    notices.c.created_at < at,
                    and_(notices.c.created_at == at, notices.c.id < notice_id),
                )
            )
        query = query.order_by(notices.c.created_at.desc(), notices.c.id.desc()).limit(limit)
        return (await self.session.execute(query)).mappings().all()

    async def after(self, user_id: str, notice_id: str, limit: int) -> Sequence[RowMapping]:
        """Inbox notices newer than ``notice_id``, oldest first (a stream resuming)."""
        anchor = (
            await self.session.execute(
                select(notices.c.created_at).where(
                    notices.c.id == notice_id, notices.c.user_id == user_id
                )
            )
        ).scalar_one_or_none()
        if anchor is None:
            return []
        query = (
            select(notices)
            .where(*self._mine(user_id))
            .where(
                or_(
                    notices.c.created_at > anchor,
                    and_(notices.c.created_at == anchor, notices.c.id > notice_id),
                )
            )
            .order_by(notices.c.created_at, notices.c.id)
            .limit(limit)
        )
        return (await self.session.execute(query)).mappings().all()

    async def get(self, user_id: str, notice_id: str) -> RowMapping | None:
        result = await self.session.execute(
            select(notices).where(notices.c.id == notice_id, *self._mine(user_id))
        )
        return result.mappings().first()

    async def unread(self, user_id: str) -> int:
        result = await self.session.execute(
            select(func.count())
            .select_from(notices)
            .where(*self._mine(user_id), notices.c.read_at.is_(None))
        )
        return int(result.scalar_one())

    async def mark_read(self, user_id: str, notice_id: str, now: datetime) -> None:
        await self.session.execute(
            update(notices)
            .where(notices.c.id == notice_id, notices.c.user_id == user_id)
            .where(notices.c.read_at.is_(None))
            .values(read_at=now)
        )

    async def mark_all_read(self, user_id: str, now: datetime) -> int:
        result = await self.session.execute(
            update(notices)
            .where(*self._mine(user_id), notices.c.read_at.is_(None))
            .values(read_at=now)
        )
        return int(getattr(result, "rowcount", 0))
