"""Bodies of the tenants API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from auth_rbac.policy.schemas import Name


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TenantIn(_Body):
    """A new tenant; ``id`` becomes its Casbin domain and never changes."""

    id: Name
    name: str = Field(min_length=1, max_length=256)


class TenantUpdate(_Body):
    """Rename, disable or enable a tenant; fields left out stay as they are."""

    name: str | None = Field(default=None, min_length=1, max_length=256)
    disabled: bool | None = None


class Tenant(BaseModel):
    id: str
    name: str
    disabled: bool
    created_at: datetime
    updated_at: datetime


class MemberIn(_Body):
    user: Name = Field(description="The user id (an access token's sub).")


class Member(BaseModel):
    tenant: str
    user: str
    created_at: datetime


class MemberList(BaseModel):
    tenant: str
    members: list[Member]


class TenantStatus(BaseModel):
    """Internal: what auth-jwt needs to issue a token in a tenant."""

    tenant: str
    exists: bool
    disabled: bool
    #: Whether the asked ``user`` is a member (always true for the default tenant).
    member: bool
