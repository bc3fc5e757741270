"""Sends by administrators, and platform events from other services."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from sv_notice.schemas import CategoryName, Channel, DedupKey, Locale, UserId


class SendIn(BaseModel):
    user_id: UserId
    category: CategoryName
    variables: dict[str, Any] = Field(default_factory=dict, max_length=50)
    locale: Locale | None = Field(None, description="Default: the user's locale, then en.")
    dedup_key: DedupKey | None = Field(
        None, description="A repeated key makes no second notice; the first one is returned."
    )
    channels: list[Channel] | None = Field(
        None, min_length=1, description="Only these of the category's channels."
    )


class EventIn(BaseModel):
    """One platform event (see ``edgelib.events``); its type names a category."""

    id: str = Field(min_length=1, max_length=64)
    type: CategoryName
    user_id: UserId
    region: str | None = Field(None, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, max_length=50)
    occurred_at: float | None = None
    source: str = Field("", max_length=64)


class EventBatch(BaseModel):
    events: list[EventIn] = Field(min_length=1, max_length=500)


class EventResult(BaseModel):
    id: str
    status: Literal["accepted", "duplicate", "rejected"]
    notice_id: str | None = None
    reason: str | None = None


class EventsAccepted(BaseModel):
    results: list[EventResult]
