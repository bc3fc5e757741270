"""Bodies of the sessions API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ClientType = Literal["web", "app", "mini"]


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)
    client_type: ClientType
    #: The active tenant of the session's tokens; one the user is a member of.
    tenant: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}$",
        description="The tenant to act in (default: the platform's own, `default`).",
    )


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=16, max_length=256)
    #: Switch the session to this tenant (the user must be a member); left out, it stays.
    tenant: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}$",
        description="Switch the session's active tenant (`default` for the platform's own).",
    )


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    #: Seconds until the access token expires.
    expires_in: int


class SessionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    client_type: ClientType
    tenant: str = "default"
    created_at: datetime
    refreshed_at: datetime | None
    expires_at: datetime
    user_agent: str | None
    address: str | None
    #: True for the session making this request.
    current: bool = False


class SessionList(BaseModel):
    items: list[SessionRead]


class RevokeUserSessions(BaseModel):
    """Internal: end a user's sessions, optionally keeping one."""

    except_session_id: str | None = None
    reason: str = Field(default="revoked", pattern=r"^[a-z-]{1,32}$")


class RevokedCount(BaseModel):
    revoked: int


class RevocationEntry(BaseModel):
    sid: str
    #: Unix time after which no access token of the session can be valid.
    exp: float


class RevocationFeed(BaseModel):
    """Revoked sessions whose access tokens may still be live."""

    #: Server time of this answer; pass it (minus a margin) as ``since`` next time.
    now: float
    revocations: list[RevocationEntry]
