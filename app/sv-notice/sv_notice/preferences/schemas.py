"""A user's contact points and per-category, per-channel switches."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from sv_notice.schemas import Channel, Locale, Text

Email = Annotated[
    str,
    StringConstraints(
        pattern=r"^[^@\s\"<>,;\x00]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$",
        max_length=320,
    ),
]


class ContactIn(BaseModel):
    """Fields left out stay as they are; ``null`` clears one."""

    email: Email | None = None
    locale: Locale | None = None


class ChannelSwitches(BaseModel):
    channels: dict[Channel, bool] = Field(min_length=1)


class WebhookIn(BaseModel):
    url: Text = Field(min_length=8, max_length=2048, description="http(s) URL receiving POSTs.")


class WebhookOut(BaseModel):
    url: str
    #: Only returned when the endpoint is set: sign-verification key for the receiver.
    secret: str | None = None


class CategoryPreference(BaseModel):
    category: str
    description: str
    critical: bool
    #: Effective switches for the channels this category uses (critical: always on).
    channels: dict[Channel, bool]


class PreferencesOut(BaseModel):
    email: str | None
    locale: str | None
    webhook: WebhookOut | None
    #: Switches for every category (``*``); a category's own switch wins over these.
    all_categories: dict[Channel, bool]
    categories: list[CategoryPreference]
