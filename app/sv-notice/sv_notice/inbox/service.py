"""The in-app inbox: pages of notices, the unread count, and marking them read."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sv_notice.exceptions import InvalidCursor, NoticeNotFound
from sv_notice.inbox.repository import InboxRepository
from sv_notice.inbox.schemas import MarkedRead, NoticeOut, NoticePage, UnreadCount
from sv_notice.models import utcnow


def notice_out(row: Mapping[Any, Any]) -> NoticeOut:
    return NoticeOut(
        id=row["id"],
        category=row["category"],
        title=row["title"],
        body=row["body"],
        locale=row["locale"],
        data=dict(row["data"] or {}),
        created_at=row["created_at"],
        read_at=row["read_at"],
        read=row["read_at"] is not None,
    )


def encode_cursor(created_at: datetime, notice_id: str) -> str:
    raw = f"{created_at.isoformat()}|{notice_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, notice_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(at)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor("the cursor is not one this API gave out") from exc
    if created_at.tzinfo is None or not notice_id or "\x00" in notice_id:
        raise InvalidCursor("the cursor is not one this API gave out")
    return created_at, notice_id


class InboxService:
    def __init__(self, repository: InboxRepository) -> None:
        self.repository = repository

    async def page(
        self, user_id: str, *, limit: int, cursor: str | None, unread_only: bool
    ) -> NoticePage:
        """Newest first, ``limit`` at a time."""
        before = decode_cursor(cursor) if cursor else None
        rows = await self.repository.page(
            user_id, limit=limit + 1, before=before, unread_only=unread_only
        )
        items = [notice_out(r) for r in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if more else None
        return NoticePage(items=items, next_cursor=next_cursor)

    async def get(self, user_id: str, notice_id: str) -> NoticeOut:
        row = await self.repository.get(user_id, notice_id)
        if row is None:
            raise NoticeNotFound(f"no notice {notice_id} in your inbox")
        return notice_out(row)

    async def unread(self, user_id: str) -> UnreadCount:
        return UnreadCount(unread=await self.repository.unread(user_id))

    async def mark_read(self, user_id: str, notice_id: str) -> NoticeOut:
        """Mark one notice read (again is fine); 404 when it is not in the user's inbox."""
        await self.get(user_id, notice_id)
        await self.repository.mark_read(user_id, notice_id, utcnow())
        return await self.get(user_id, notice_id)

    async def mark_all_read(self, user_id: str) -> MarkedRead:
        return MarkedRead(marked=await self.repository.mark_all_read(user_id, utcnow()))

    async def after(self, user_id: str, notice_id: str, limit: int = 100) -> list[NoticeOut]:
        return [notice_out(r) for r in await self.repository.after(user_id, notice_id, limit)]
