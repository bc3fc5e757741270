"""The in-app inbox as users read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class NoticeOut(BaseModel):
    id: str
    category: str
    title: str
    body: str
    locale: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None
    read: bool


class NoticePage(BaseModel):
    items: list[NoticeOut]
    #: Pass as ``cursor`` for the next (older) page; absent on the last page.
    next_cursor: str | None = None


class UnreadCount(BaseModel):
    unread: int


class MarkedRead(BaseModel):
    marked: int
