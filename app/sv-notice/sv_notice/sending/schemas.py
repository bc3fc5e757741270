"""Sends by administrators, and platform events from other services."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from sv_notice.schemas import CategoryName, Channel, DedupKey, Locale, Text, Token, UserId


class SendIn(BaseModel):
    """The recipient is ``user_id`` or ``username`` (found in sv-region's directory)."""

    user_id: UserId | None = None
    username: Token | None = None
    category: CategoryName
    variables: dict[str, Any] = Field(default_factory=dict, max_length=50)
    locale: Locale | None = Field(None, description="Default: the user's locale, then en.")
    dedup_key: DedupKey | None = Field(
        None, description="A repeated key makes no second notice; the first one is returned."
    )
    channels: list[Channel] | None = Field(
        None, min_length=1, description="Only these of the category's channels."
    )

    @model_validator(mode="after")
    def _one_recipient(self) -> SendIn:
        if (self.user_id is None) == (self.username is None):
            raise ValueError("give exactly one of user_id and username")
        return self


class ForwardedSend(SendIn):
    """A send another region's sv-notice hands over (the recipient lives here)."""

    user_id: UserId
    source: Text = Field("admin", max_length=64)


class EventIn(BaseModel):
    """One platform event (see ``edgelib.events``); its type names a category."""

    id: Token
    type: CategoryName
    user_id: UserId
    region: Token | None = None
    data: dict[str, Any] = Field(default_factory=dict, max_length=50)
    occurred_at: float | None = None
    source: Text = Field("", max_length=64)
    #: W3C trace context of the request that caused the event (edgelib.events).
    traceparent: str = Field("", max_length=64, pattern=r"^[0-9a-f-]*$")


class EventBatch(BaseModel):
    events: list[EventIn] = Field(min_length=1, max_length=500)


class EventResult(BaseModel):
    id: str
    status: Literal["accepted", "duplicate", "rejected"]
    notice_id: str | None = None
    reason: str | None = None


class EventsAccepted(BaseModel):
    results: list[EventResult]
