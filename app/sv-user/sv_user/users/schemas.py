"""Request and response bodies of the users API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$"
REGION_PATTERN = r"^[a-z][a-z0-9-]{0,31}$"
# Deliberately loose: one @, no spaces or control characters (PostgreSQL refuses a NUL:
# that was a 500); the address is proven by a mail later, not a regex.
EMAIL_PATTERN = r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,255}$"
#: Free text shown to people: no control characters.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
PHONE_PATTERN = r"^\+[0-9 ()-]{4,24}$"

Password = Field(min_length=8, max_length=128)


class UserCreate(BaseModel):
    """A registration: the region is assigned by sv-region when not given."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN, description="3-32 letters, digits, _ . -")
    password: str = Password
    email: str | None = Field(default=None, pattern=EMAIL_PATTERN, max_length=320)
    region: str | None = Field(default=None, pattern=REGION_PATTERN)
    phone: str | None = Field(
        default=None,
        pattern=PHONE_PATTERN,
        description="E.164 number; with no region, sv-region's phone rules may pick one",
    )

    @field_validator("username")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class AccountCreate(BaseModel):
    """Internal: store an account whose username the directory already reserved."""

    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Password
    email: str | None = Field(default=None, pattern=EMAIL_PATTERN, max_length=320)
    region: str = Field(pattern=REGION_PATTERN)


class UserCreated(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    region: str


class UserRead(UserCreated):
    email: str | None
    display_name: str | None
    created_at: datetime
    updated_at: datetime


class UserList(BaseModel):
    items: list[UserRead]
    #: Pass as ``after`` for the next page; null on the last one.
    next: str | None


class ProfileUpdate(BaseModel):
    """Fields to change; a field set to null is cleared, a field left out is kept."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, pattern=EMAIL_PATTERN, max_length=320)
    display_name: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=TEXT_PATTERN
    )


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=128)
    new_password: str = Password


class CredentialCheck(BaseModel):
    """Internal (auth-jwt): is this the password of this username?"""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)


class VerifiedUser(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    region: str
    status: Literal["active"] = "active"
