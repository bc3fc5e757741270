"""Names shared by sv-notice's domains: channels, category names, locales, ids."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, StringConstraints

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
DedupKey = Annotated[str, StringConstraints(pattern=r"^[^\x00]{1,200}$")]
#: Ids this service gives out (UUIDs), as they appear in paths.
ResourceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,36}$")]
#: Short printable ASCII: event ids, sources, region names.
Token = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,64}$")]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


#: Free text that will be stored.
Text = Annotated[str, AfterValidator(_no_nul)]
VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
