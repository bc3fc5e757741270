"""Delivery status as administrators read it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from sv_notice.schemas import Channel, DeliveryStatus


class DeliveryOut(BaseModel):
    id: str
    notice_id: str
    user_id: str
    channel: Channel
    status: DeliveryStatus
    attempts: int
    #: Why the last attempt failed, or why the channel was suppressed.
    reason: str | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    failed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None = None


class NoticeStatus(BaseModel):
    """A notice with the state of each of its channels."""

    id: str
    user_id: str
    category: str
    title: str
    body: str
    locale: str
    data: dict[str, Any]
    source: str
    dedup_key: str | None
    in_inbox: bool
    created_at: datetime
    read_at: datetime | None
    #: True when the send found an earlier notice with the same de-duplication key.
    duplicate: bool = False
    deliveries: list[DeliveryOut]
