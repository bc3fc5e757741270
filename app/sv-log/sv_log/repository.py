"""The SQL log store (SQLAlchemy Core): PostgreSQL in production, SQLite locally.

PostgreSQL searches text with its full-text engine (``simple`` configuration, backed
by a GIN index, see migration 0002); SQLite matches every word as a substring.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from edgelib.db import Database
from sv_log.exceptions import InvalidCursor, StoreUnavailable
from sv_log.schemas import IntakeRecord, LogRecordOut
from sv_log.store import LogFilter, Position

metadata = MetaData()

log_records = Table(
    "log_records",
    metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("service", String(64), nullable=False),
    Column("instance", String(128)),
    Column("region", String(32)),
    Column("level", String(16), nullable=False),
    Column("message", Text(), nullable=False),
    Column("trace_id", String(32)),
    Column("request_id", String(128)),
    Column("attributes", JSON()),
    Column("tenant", String(128)),
    Column("app", String(128)),
)

_COLUMNS = (
    log_records.c.id,
    log_records.c.ts,
    log_records.c.service,
    log_records.c.instance,
    log_records.c.region,
    log_records.c.level,
    log_records.c.message,
    log_records.c.trace_id,
    log_records.c.request_id,
    log_records.c.attributes,
    log_records.c.tenant,
    log_records.c.app,
)
DELETE_CHUNK = 10_000


def _escape_like(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlLogStore:
    """Log records in the ``log_records`` table of the service's database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.engine = database.engine
        self._postgres = self.engine.dialect.name == "postgresql"

    async def prepare(self) -> None:
        return None  # the migrations made everything

    async def insert(self, records: Sequence[IntakeRecord]) -> list[LogRecordOut]:
        if not records:
            return []
        rows = [r.model_dump() for r in records]
        stmt = insert(log_records).returning(log_records.c.id, sort_by_parameter_order=True)
        try:
            async with self.engine.begin() as conn:
                ids = (await conn.execute(stmt, rows)).scalars().all()
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable("the log database did not accept the batch") from exc
        return [LogRecordOut(id=str(i), **row) for i, row in zip(ids, rows, strict=True)]

    def _conditions(self, flt: LogFilter) -> list[ColumnElement[bool]]:
        c = log_records.c
        conds: list[ColumnElement[bool]] = []
        if flt.since is not None:
            conds.append(c.ts >= flt.since)
        if flt.until is not None:
            conds.append(c.ts < flt.until)
        if flt.services:
            conds.append(c.service.in_(flt.services))
        if flt.regions:
            conds.append(c.region.in_(flt.regions))
        if flt.tenants:
            conds.append(c.tenant.in_(flt.tenants))
        if flt.apps:
            conds.append(c.app.in_(flt.apps))
        if flt.levels:
            conds.append(c.level.in_(flt.levels))
        if flt.trace_id is not None:
            conds.append(c.trace_id == flt.trace_id)
        if flt.request_id is not None:
            conds.append(c.request_id == flt.request_id)
        if flt.text:
            if self._postgres:
                # Literal config so the planner matches the GIN index expression.
                config: ColumnElement[Any] = literal_column("'simple'::regconfig")
                conds.append(
                    func.to_tsvector(config, c.message).op("@@")(
                        func.websearch_to_tsquery(config, flt.text)
                    )
                )
            else:
                conds.extend(
                    c.message.ilike(f"%{_escape_like(w)}%", escape="\\") for w in flt.words
                )
        return conds

    async def query(
        self, flt: LogFilter, *, after: Position | None, limit: int, newest_first: bool
    ) -> list[LogRecordOut]:
        c = log_records.c
        conds = self._conditions(flt)
        if after is not None:
            if not after.id.isdigit() or len(after.id) > 18:
                raise InvalidCursor("the cursor does not belong to this store")
            last_id = int(after.id)
            if newest_first:
                conds.append(or_(c.ts < after.ts, and_(c.ts == after.ts, c.id < last_id)))
            else:
                conds.append(or_(c.ts > after.ts, and_(c.ts == after.ts, c.id > last_id)))
        order = (c.ts.desc(), c.id.desc()) if newest_first else (c.ts.asc(), c.id.asc())
        stmt = select(*_COLUMNS).where(and_(True, *conds)).order_by(*order).limit(limit)
        try:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(stmt)).mappings().all()
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable("the log database did not answer") from exc
        return [_record(row) for row in rows]

    async def delete_older(
        self, cutoff: datetime, *, services: Sequence[str] = (), exclude: Sequence[str] = ()
    ) -> int:
        c = log_records.c
        conds: list[ColumnElement[bool]] = [c.ts < cutoff]
        if services:
            conds.append(c.service.in_(services))
        if exclude:
            conds.append(c.service.not_in(exclude))
        total = 0
        # Short transactions: a big purge must not hold locks over the intake for long.
        while True:
            chunk = select(c.id).where(*conds).limit(DELETE_CHUNK).scalar_subquery()
            async with self.engine.begin() as conn:
                deleted = (await conn.execute(delete(log_records).where(c.id.in_(chunk)))).rowcount
            total += deleted
            if deleted < DELETE_CHUNK:
                return total

    async def ping(self) -> None:
        await self.database.ping()

    async def close(self) -> None:
        return None  # the app factory disposes of the engine


def _record(row: Any) -> LogRecordOut:
    ts: datetime = row["ts"]
    if ts.tzinfo is None:  # SQLite keeps no zone; everything is stored in UTC
        ts = ts.replace(tzinfo=UTC)
    return LogRecordOut(
        id=str(row["id"]),
        ts=ts,
        service=row["service"],
        instance=row["instance"],
        region=row["region"],
        level=row["level"],
        message=row["message"],
        trace_id=row["trace_id"],
        request_id=row["request_id"],
        attributes=row["attributes"],
        tenant=row["tenant"],
        app=row["app"],
    )
