"""Delivery status, the dead-letter list and replay, for administrators."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sv_notice.delivery.repository import DeliveryRepository
from sv_notice.delivery.schemas import DeliveryOut, DeliveryPage, NoticeStatus
from sv_notice.exceptions import DeliveryNotFound, NotDeadLettered, NoticeNotFound
from sv_notice.inbox.service import decode_cursor, encode_cursor
from sv_notice.models import notices, utcnow


def delivery_out(row: Mapping[Any, Any]) -> DeliveryOut:
    return DeliveryOut(
        id=row["id"],
        notice_id=row["notice_id"],
        user_id=row["user_id"],
        channel=row["channel"],
        status=row["status"],
        attempts=row["attempts"],
        reason=row["last_error"],
        next_attempt_at=row["next_attempt_at"] if row["status"] == "queued" else None,
        sent_at=row["sent_at"],
        failed_at=row["failed_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class DeliveryService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repository = DeliveryRepository(session)

    async def notice(self, notice_id: str, *, duplicate: bool = False) -> NoticeStatus:
        """A notice and the state of each of its channels."""
        row = (
            (await self.session.execute(select(notices).where(notices.c.id == notice_id)))
            .mappings()
            .first()
        )
        if row is None:
            raise NoticeNotFound(f"no notice {notice_id}")
        return NoticeStatus(
            id=row["id"],
            user_id=row["user_id"],
            category=row["category"],
            title=row["title"],
            body=row["body"],
            locale=row["locale"],
            data=dict(row["data"] or {}),
            source=row["source"],
            dedup_key=row["dedup_key"],
            in_inbox=bool(row["in_inbox"]),
            created_at=row["created_at"],
            read_at=row["read_at"],
            duplicate=duplicate,
            deliveries=[delivery_out(d) for d in await self.repository.for_notice(notice_id)],
        )

    async def page(
        self,
        *,
        limit: int,
        cursor: str | None = None,
        status: str | None = None,
        channel: str | None = None,
        user_id: str | None = None,
    ) -> DeliveryPage:
        """Deliveries, most recently changed first."""
        rows = await self.repository.page(
            limit=limit + 1,
            status=status,
            channel=channel,
            user_id=user_id,
            before=decode_cursor(cursor) if cursor else None,
        )
        items = [delivery_out(r) for r in rows[:limit]]
        more = len(rows) > limit
        return DeliveryPage(
            items=items,
            next_cursor=encode_cursor(items[-1].updated_at, items[-1].id) if more else None,
        )

    async def get(self, delivery_id: str) -> DeliveryOut:
        row = await self.repository.get(delivery_id)
        if row is None:
            raise DeliveryNotFound(f"no delivery {delivery_id}")
        return delivery_out(row)

    async def replay(self, delivery_id: str) -> DeliveryOut:
        """Queue a dead-lettered delivery again, with a fresh attempt budget."""
        current = await self.get(delivery_id)
        if current.status != "failed":
            raise NotDeadLettered(f"delivery {delivery_id} is {current.status}, not failed")
        if not await self.repository.requeue(delivery_id, utcnow()):
            raise NotDeadLettered(f"delivery {delivery_id} changed meanwhile; look again")
        return await self.get(delivery_id)
