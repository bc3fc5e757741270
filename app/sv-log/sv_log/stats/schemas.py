"""The shapes of traffic statistics: the gateways' minute rows, query parameters, series."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sv_log.schemas import utc

#: Upper bounds (ms) of the latency histogram: the gateway's request-duration buckets
#: (gateway_api.metrics.DURATION_BUCKETS); the last bucket is +Inf.
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
)  # fmt: skip
BUCKETS = len(LATENCY_BOUNDS_MS) + 1
STATUS_CLASSES: tuple[str, ...] = ("1xx", "2xx", "3xx", "4xx", "5xx")
StatusClass = Literal["1xx", "2xx", "3xx", "4xx", "5xx"]
Step = Literal["minute", "hour", "day"]
STEP_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400}
GroupBy = Literal["tenant", "app", "route", "status_class"]

NAME = r"^[A-Za-z0-9_.@:\-]+$"
ROUTE = r"^[\x20-\x7e]+$"
MAX_COUNT = 10**15


class StatsRow(BaseModel):
    """One gateway worker's counts for one (minute, tenant, app, route, status class)."""

    model_config = ConfigDict(extra="forbid")

    minute: int = Field(ge=0, le=2**40, description="Start of the minute, UNIX seconds.")
    tenant: str = Field(min_length=1, max_length=128, pattern=NAME)
    app: str = Field("", max_length=128, pattern=r"^[A-Za-z0-9_.@:\-]*$")
    route: str = Field(min_length=1, max_length=256, pattern=ROUTE)
    status_class: StatusClass
    requests: int = Field(ge=1, le=MAX_COUNT)
    latency_us: int = Field(ge=0, le=MAX_COUNT * 10**6)
    buckets: list[int] = Field(min_length=BUCKETS, max_length=BUCKETS)

    @model_validator(mode="after")
    def _consistent(self) -> StatsRow:
        if self.minute % 60:
            raise ValueError("minute must be a multiple of 60 seconds")
        if any(b < 0 for b in self.buckets):
            raise ValueError("bucket counts cannot be negative")
        # WebSocket tunnels are counted but have no latency: buckets may add up to less.
        if sum(self.buckets) > self.requests:
            raise ValueError("the buckets add up to more than the requests")
        return self

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.tenant, self.app, self.route, self.status_class)


class StatsAccepted(BaseModel):
    rows: int
    duplicate: bool = False


class StatsQueryParams(BaseModel):
    """Which traffic a query wants, and at which step."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tenant: str | None = Field(None, min_length=1, max_length=128, pattern=NAME)
    app: str | None = Field(
        None, max_length=128, pattern=r"^[A-Za-z0-9_.@:\-]*$", description='"" for users.'
    )
    route: str | None = Field(None, min_length=1, max_length=256, pattern=ROUTE)
    from_: datetime | None = Field(
        None, alias="from", description="Inclusive start (ISO 8601); default: 60 steps back."
    )
    to: datetime | None = Field(None, description="Exclusive end (ISO 8601); default: now.")
    step: Step = "hour"
    group_by: GroupBy | None = Field(None, description="One series per value of this field.")

    @field_validator("from_", "to")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else utc(value)


class TodayParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str | None = Field(None, min_length=1, max_length=128, pattern=NAME)
    app: str | None = Field(None, max_length=128, pattern=r"^[A-Za-z0-9_.@:\-]*$")
    route: str | None = Field(None, min_length=1, max_length=256, pattern=ROUTE)


class Counts(BaseModel):
    """Requests in a bucket of time, by status class, with their latency."""

    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    status_classes: dict[str, int] = Field(default_factory=lambda: dict.fromkeys(STATUS_CLASSES, 0))
    latency_ms_sum: float = 0.0
    latency_ms_avg: float | None = None
    latency_histogram: list[int] = Field(
        default_factory=lambda: [0] * BUCKETS,
        description="Requests per latency bucket (bounds in `latency_bounds_ms`, then +Inf).",
    )


class Point(Counts):
    start: datetime


class Series(BaseModel):
    group: dict[str, str] = Field(
        default_factory=dict, description="The value of `group_by` this series is for."
    )
    totals: Counts
    points: list[Point]


class StatsOut(BaseModel):
    tenant: str | None
    app: str | None
    route: str | None
    step: Step
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    latency_bounds_ms: list[float]
    series: list[Series]


class Day(BaseModel):
    date: str
    totals: Counts
    hours: list[Point]


class TodayOut(BaseModel):
    """Today (UTC) so far against yesterday, hour by hour."""

    tenant: str | None
    app: str | None
    route: str | None
    now: datetime
    today: Day
    yesterday: Day
    yesterday_same_time: Counts = Field(
        description="Yesterday's totals up to the same time of day as now."
    )
    change_ratio: float | None = Field(
        description="today.requests / yesterday_same_time.requests (null when that is 0)."
    )
