"""SQL for deliveries: the database outbox the queue is fed from and recovered with.

A worker *claims* a delivery before attempting it: one conditional UPDATE that
only succeeds while the delivery is queued, due and not leased to someone else.
So a delivery that reaches the queue twice (a retry timer and a sweep, say) is
still attempted once at a time, and a crashed worker's lease runs out, or is
released when the same instance starts again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, RowMapping, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sv_notice.models import contacts, deliveries, notices

#: A retry may come off the queue a moment before its due time; it still counts.
DUE_TOLERANCE = timedelta(milliseconds=200)


def _unleased(now: datetime) -> ColumnElement[bool]:
    return or_(deliveries.c.locked_until.is_(None), deliveries.c.locked_until < now)


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(deliveries.insert(), list(rows))

    async def claim(self, delivery_id: str, owner: str, now: datetime, lease: timedelta) -> bool:
        """Lease the delivery to ``owner`` and count an attempt; False when not claimable."""
        result = await self.session.execute(
            update(deliveries)
            .where(
                deliveries.c.id == delivery_id,
                deliveries.c.status == "queued",
                or_(
                    deliveries.c.next_attempt_at.is_(None),
                    deliveries.c.next_attempt_at <= now + DUE_TOLERANCE,
                ),
                _unleased(now),
            )
            .values(
                locked_by=owner,
                locked_until=now + lease,
                attempts=deliveries.c.attempts + 1,
                updated_at=now,
            )
        )
        return int(getattr(result, "rowcount", 0)) == 1

    async def job(self, delivery_id: str) -> RowMapping | None:
        """The delivery with its notice and the user's contact points."""
        query = (
            select(
                deliveries.c.id.label("delivery_id"),
                deliveries.c.channel,
                deliveries.c.attempts,
                notices.c.id,
                notices.c.user_id,
                notices.c.category,
                notices.c.title,
                notices.c.body,
                notices.c.locale,
                notices.c.data,
                notices.c.created_at,
                contacts.c.email,
                contacts.c.webhook_url,
                contacts.c.webhook_secret,
            )
            .select_from(
                deliveries.join(notices, notices.c.id == deliveries.c.notice_id).outerjoin(
                    contacts, contacts.c.user_id == notices.c.user_id
                )
            )
            .where(deliveries.c.id == delivery_id)
        )
        return (await self.session.execute(query)).mappings().first()

    async def _finish(self, delivery_id: str, owner: str, **values: Any) -> None:
        await self.session.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id, deliveries.c.locked_by == owner)
            .values(locked_by=None, locked_until=None, **values)
        )

    async def mark_sent(self, delivery_id: str, owner: str, now: datetime) -> None:
        await self._finish(
            delivery_id, owner, status="sent", sent_at=now, updated_at=now, next_attempt_at=None
        )

    async def mark_retry(
        self, delivery_id: str, owner: str, now: datetime, due: datetime, reason: str
    ) -> None:
        await self._finish(
            delivery_id, owner, next_attempt_at=due, last_error=reason, updated_at=now
        )

    async def mark_failed(self, delivery_id: str, owner: str, now: datetime, reason: str) -> None:
        await self._finish(
            delivery_id,
            owner,
            status="failed",
            failed_at=now,
            last_error=reason,
            next_attempt_at=None,
            updated_at=now,
        )

    async def release(self, owner: str) -> int:
        """Drop the leases ``owner`` held before it restarted."""
        result = await self.session.execute(
            update(deliveries)
            .where(deliveries.c.locked_by == owner, deliveries.c.status == "queued")
            .values(locked_by=None, locked_until=None)
        )
        return int(getattr(result, "rowcount", 0))

    async def waiting(
        self, now: datetime, *, due_before: datetime | None, limit: int
    ) -> Sequence[RowMapping]:
        """Queued, unleased deliveries (only those due before ``due_before`` when given)."""
        query = select(deliveries.c.id, deliveries.c.next_attempt_at).where(
            deliveries.c.status == "queued", _unleased(now)
        )
        if due_before is not None:
            query = query.where(
                or_(
                    deliveries.c.next_attempt_at.is_(None),
                    deliveries.c.next_attempt_at <= due_before,
                )
            )
        query = query.order_by(deliveries.c.next_attempt_at).limit(limit)
        return (await self.session.execute(query)).mappings().all()

    async def get(self, delivery_id: str) -> RowMapping | None:
        result = await self.session.execute(
            select(deliveries).where(deliveries.c.id == delivery_id)
        )
        return result.mappings().first()

    async def for_notice(self, notice_id: str) -> Sequence[RowMapping]:
        result = await self.session.execute(
            select(deliveries)
            .where(deliveries.c.notice_id == notice_id)
            .order_by(deliveries.c.channel)
        )
        return result.mappings().all()

    async def page(
        self,
        *,
        limit: int,
        status: str | None = None,
        channel: str | None = None,
        user_id: str | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> Sequence[RowMapping]:
        """Most recently updated first."""
        query = select(deliveries)
        if status is not None:
            query = query.where(deliveries.c.status == status)
        if channel is not None:
            query = query.where(deliveries.c.channel == channel)
        if user_id is not None:
            query = query.where(deliveries.c.user_id == user_id)
        if before is not None:
            at, delivery_id = before
            query = query.where(
                or_(
                    deliveries.c.updated_at < at,
                    and_(deliveries.c.updated_at == at, deliveries.c.id < delivery_id),
                )
            )
        query = query.order_by(deliveries.c.updated_at.desc(), deliveries.c.id.desc()).limit(limit)
        return (await self.session.execute(query)).mappings().all()

    async def dead_letter_counts(self) -> dict[str, int]:
        """How many deliveries are in the dead-letter list, per channel."""
        rows = await self.session.execute(
            select(deliveries.c.channel, func.count())
            .where(deliveries.c.status == "failed")
            .group_by(deliveries.c.channel)
        )
        return {str(channel): int(n) for channel, n in rows.all()}

    async def requeue(self, delivery_id: str, now: datetime) -> bool:
        """Put a dead-lettered delivery back in the queue with a fresh attempt budget."""
        result = await self.session.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id, deliveries.c.status == "failed")
            .values(
                status="queued",
                attempts=0,
                next_attempt_at=now,
                failed_at=None,
                locked_by=None,
                locked_until=None,
                updated_at=now,
            )
        )
        return int(getattr(result, "rowcount", 0)) == 1
