"""Request and response bodies of the directory's internal API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$"
REGION_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"


class ReservationCreate(BaseModel):
    """Reserve ``username``; sv-region picks the region when none is given."""

    username: str = Field(pattern=USERNAME_PATTERN)
    user_id: uuid.UUID | None = None
    region: str | None = Field(default=None, pattern=REGION_PATTERN)
    #: Hints for the assignment rules when no region is given.
    phone: str | None = Field(default=None, max_length=32)
    client_address: str | None = Field(default=None, max_length=64)


class DirectoryEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    user_id: str
    username: str
    region: str
    status: Literal["pending", "active"]
    created_at: datetime


class DirectoryPage(BaseModel):
    """One page of a directory search; ``next`` is the ``after`` of the next page."""

    items: list[DirectoryEntryRead]
    next: str | None
