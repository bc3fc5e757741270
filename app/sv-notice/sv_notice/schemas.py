"""Names shared by sv-notice's domains: channels, category names, locales, ids."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

Channel = Literal["in_app", "realtime", "email", "webhook"]
CHANNELS: tuple[Channel, ...] = ("in_app", "realtime", "email", "webhook")
#: Channels that go through the delivery queue (the inbox is written with the notice).
QUEUED_CHANNELS: frozenset[str] = frozenset({"realtime", "email", "webhook"})

DeliveryStatus = Literal["queued", "sent", "failed", "suppressed"]

CategoryName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.-]{0,63}$", max_length=64)]
#: A category name, or ``*`` for "every category" in preferences.
PreferenceCategory = Annotated[
    str, StringConstraints(pattern=r"^(\*|[a-z][a-z0-9_.-]{0,63})$", max_length=64)
]
Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]
UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,36}$")]
DedupKey = Annotated[str, StringConstraints(min_length=1, max_length=200)]
VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
