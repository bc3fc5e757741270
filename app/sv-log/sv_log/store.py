"""What every log store offers, and the filter and position types they share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sv_log.schemas import IntakeRecord, LogFilterParams, LogRecordOut


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which records a query or a tail wants; empty fields match everything."""

    since: datetime | None = None
    until: datetime | None = None
    services: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    apps: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    trace_id: str | None = None
    request_id: str | None = None
    text: str | None = None
    words: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        words = tuple(w.casefold() for w in (self.text or "").split() if w)
        object.__setattr__(self, "words", words)

    @classmethod
    def from_params(cls, params: LogFilterParams) -> LogFilter:
        return cls(
            since=params.since,
            until=params.until,
            services=tuple(params.service),
            regions=tuple(params.region),
            tenants=tuple(params.tenant),
            apps=tuple(params.app),
            levels=tuple(params.level),
            trace_id=params.trace_id,
            request_id=params.request_id,
            text=params.q,
        )

    def matches(self, record: Mapping[str, Any], ts: datetime) -> bool:
        """The same test in Python, for records on their way to live tails.

        Text matches when every word of it occurs in the message, ignoring case (the
        SQLite and MongoDB stores; PostgreSQL matches whole words).
        """
        if self.since is not None and ts < self.since:
            return False
        if self.until is not None and ts >= self.until:
            return False
        if self.services and record.get("service") not in self.services:
            return False
        if self.regions and record.get("region") not in self.regions:
            return False
        if self.tenants and record.get("tenant") not in self.tenants:
            return False
        if self.apps and record.get("app") not in self.apps:
            return False
        if self.levels and record.get("level") not in self.levels:
            return False
        if self.trace_id is not None and record.get("trace_id") != self.trace_id:
            return False
        if self.request_id is not None and record.get("request_id") != self.request_id:
            return False
        if self.words:
            message = str(record.get("message", "")).casefold()
            return all(w in message for w in self.words)
        return True


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last record's timestamp and id (keyset pagination)."""

    ts: datetime
    id: str


class LogStore(Protocol):
    """Storage of log records. Each call is its own transaction."""

    async def prepare(self) -> None:
        """Create what the store needs beyond migrations (MongoDB indexes)."""

    async def insert(self, records: Sequence[IntakeRecord]) -> list[LogRecordOut]:
        """Store all records or none; return them with their ids, in order."""

    async def query(
        self, flt: LogFilter, *, after: Position | None, limit: int, newest_first: bool
    ) -> list[LogRecordOut]:
        """Up to ``limit`` matching records strictly past ``after``, ordered by (ts, id)."""

    async def delete_older(
        self, cutoff: datetime, *, services: Sequence[str] = (), exclude: Sequence[str] = ()
    ) -> int:
        """Delete records before ``cutoff`` (of ``services`` only, or all but ``exclude``)."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
