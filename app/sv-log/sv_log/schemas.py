"""The shapes sv-log reads and writes: intake records, query parameters, pages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Level = Literal["trace", "debug", "info", "warning", "error", "critical"]
LEVELS: tuple[Level, ...] = ("trace", "debug", "info", "warning", "error", "critical")
_LEVEL_ALIASES = {"warn": "warning", "err": "error", "fatal": "critical", "crit": "critical"}

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"
TRACE_ID_PATTERN = r"^[0-9a-f]{32}$"
TENANT_PATTERN = r"^[A-Za-z0-9_.@:\-]+$"


def utc(value: datetime) -> datetime:
    """The same instant in UTC; a naive value is taken as UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("timestamp out of range") from exc


def _clean(value: str) -> str:
    # PostgreSQL text cannot hold NUL; keep the record and mark where it was.
    return value.replace("\x00", "\ufffd")


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, dict):
        return {_clean(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    return value


class IntakeRecord(BaseModel):
    """One structured log record as services send it."""

    model_config = ConfigDict(extra="forbid")

    ts: datetime
    service: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN)
    instance: str | None = Field(None, max_length=128)
    region: str | None = Field(None, max_length=32, pattern=NAME_PATTERN)
    level: Level
    message: str
    trace_id: str | None = Field(None, pattern=TRACE_ID_PATTERN)
    request_id: str | None = Field(None, max_length=128)
    attributes: dict[str, Any] | None = None
    #: The caller's tenant and app, when the record is about a request made by one.
    tenant: str | None = Field(None, max_length=128, pattern=TENANT_PATTERN)
    app: str | None = Field(None, max_length=128, pattern=TENANT_PATTERN)

    @field_validator("ts")
    @classmethod
    def _ts_utc(cls, value: datetime) -> datetime:
        return utc(value)

    @field_validator("level", mode="before")
    @classmethod
    def _level_lower(cls, value: object) -> object:
        if isinstance(value, str):
            lowered = value.strip().lower()
            return _LEVEL_ALIASES.get(lowered, lowered)
        return value

    @field_validator("trace_id", mode="before")
    @classmethod
    def _trace_lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("message", "instance", "request_id")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        return None if value is None else _clean(value)

    @field_validator("attributes")
    @classmethod
    def _attributes_clean(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _clean_json(value)


class IntakeAccepted(BaseModel):
    accepted: int
    duplicate: bool = False


class LogRecordOut(BaseModel):
    """A stored record; ``id`` is opaque (a number on SQL stores, an ObjectId on MongoDB)."""

    id: str
    ts: datetime
    service: str
    instance: str | None = None
    region: str | None = None
    level: str
    message: str
    trace_id: str | None = None
    request_id: str | None = None
    attributes: dict[str, Any] | None = None
    tenant: str | None = None
    app: str | None = None


class LogPage(BaseModel):
    items: list[LogRecordOut]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; absent on the last page."
    )


class LogFilterParams(BaseModel):
    """Filters shared by the query and the live tail."""

    model_config = ConfigDict(extra="forbid")

    since: datetime | None = Field(None, description="Inclusive lower bound (ISO 8601).")
    until: datetime | None = Field(None, description="Exclusive upper bound (ISO 8601).")
    service: list[str] = Field(default_factory=list, max_length=50)
    region: list[str] = Field(default_factory=list, max_length=50)
    tenant: list[str] = Field(default_factory=list, max_length=50)
    app: list[str] = Field(default_factory=list, max_length=50)
    level: list[Level] = Field(default_factory=list)
    trace_id: str | None = Field(None, pattern=TRACE_ID_PATTERN)
    request_id: str | None = Field(None, max_length=128)
    q: str | None = Field(None, min_length=1, max_length=200, description="Text in the message.")

    @field_validator("since", "until")
    @classmethod
    def _bounds_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else utc(value)

    @field_validator("service", "region", "tenant", "app", "request_id", "q")
    @classmethod
    def _no_nul(cls, value: str | list[str] | None) -> str | list[str] | None:
        values = value if isinstance(value, list) else [value or ""]
        if any("\x00" in v for v in values):
            raise ValueError("NUL characters are not allowed")
        return value

    @field_validator("trace_id", mode="before")
    @classmethod
    def _trace_lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class LogQueryParams(LogFilterParams):
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=512)
    order: Literal["desc", "asc"] = Field("desc", description="desc: newest first.")


class RetentionOut(BaseModel):
    default_days: int
    by_service: dict[str, int]
    interval_seconds: float
