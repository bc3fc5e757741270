"""Bodies of the regions admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

REGION_NAME = r"^[a-z][a-z0-9-]{0,31}$"
SERVICE_NAME = r"^[a-z][a-z0-9-]{0,63}$"
RegionStatus = Literal["active", "draining", "disabled"]


class RegionWrite(BaseModel):
    """Create or replace a region. ``draining``/``disabled`` regions take no new users."""

    model_config = ConfigDict(extra="forbid")

    status: RegionStatus = "active"
    endpoints: dict[str, list[AnyHttpUrl]] | None = Field(
        default=None, description="service name -> instance base URLs (static discovery)"
    )
    discovery: str = Field(
        default="static", pattern=r"^(static|k8s:[a-z0-9-]{1,63}|etcd:/[\w/.-]{0,100})$"
    )
    weight: int = Field(default=1, ge=0, le=1000)


class RegionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    status: str
    endpoints: dict[str, list[str]] | None
    discovery: str
    weight: int
    created_at: datetime
    updated_at: datetime | None


class RuleCreate(BaseModel):
    """``phone_prefix``: an E.164 prefix such as ``+1`` or ``+4420``; ``network``: a CIDR."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["phone_prefix", "network"]
    match: str = Field(min_length=2, max_length=64)
    region: str = Field(pattern=REGION_NAME)
    priority: int = Field(default=100, ge=0, le=10_000)


class RuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    match: str
    region: str
    priority: int
    created_at: datetime


class Assignment(BaseModel):
    """Which region a new user with these hints would get, and by which rule."""

    region: str
    rule: str
