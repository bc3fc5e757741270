"""Bodies of the quotas API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from auth_rbac.policy.schemas import NAME_PATTERN, Name

Kind = Literal["app", "tenant", "route", "service"]
OnRedisDown = Literal["local", "open", "closed"]
#: A route's name as the gateway's table makes it: methods (or ``*``), a space, the path.
ROUTE_PATTERN = r"^(\*|[A-Z]+(,[A-Z]+)*) /[!-~]{0,240}$"


class QuotaIn(BaseModel):
    """Set (create or replace) the limits of one app, tenant, route or service."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    target: str = Field(
        min_length=1,
        max_length=256,
        description="The app's client id, the tenant's id, the route's name "
        "(`* /api/v1/echo`, as /cluster shows it) or the service's name.",
    )
    tenant: Name | None = Field(
        default=None,
        description="An app's tenant: the caller's own unless a platform admin names one.",
    )
    qps: int | None = Field(default=None, ge=1, le=1_000_000)
    qpd: int | None = Field(default=None, ge=1, le=10**12)
    concurrency: int | None = Field(default=None, ge=1, le=1_000_000)
    burst: int = Field(default=1, ge=1, le=10_000, description="GCRA tolerance, in intervals.")
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="IANA zone of the per-day count (a tenant's applies to its apps); UTC.",
    )
    on_redis_down: OnRedisDown = "local"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _target(self) -> QuotaIn:
        pattern = ROUTE_PATTERN if self.kind == "route" else NAME_PATTERN
        if not re.match(pattern, self.target):
            raise ValueError(f"target {self.target!r} is not a valid {self.kind} name")
        if self.qps is None and self.qpd is None and self.concurrency is None:
            raise ValueError("set at least one of qps, qpd and concurrency")
        if (
            self.kind != "app"
            and self.tenant is not None
            and (self.kind != "tenant" or self.tenant != self.target)
        ):
            raise ValueError("tenant is named only for an app's quota")
        return self


class Quota(BaseModel):
    kind: Kind
    tenant: str
    target: str
    qps: int | None
    qpd: int | None
    concurrency: int | None
    burst: int
    timezone: str | None
    on_redis_down: OnRedisDown
    updated_at: datetime
    updated_by: str


class QuotaList(BaseModel):
    version: int
    quotas: list[Quota]


class QuotaDocument(BaseModel):
    """Internal, for gateways: every quota, or only the version when unchanged."""

    version: int
    changed: bool
    quotas: list[Quota] | None = None
