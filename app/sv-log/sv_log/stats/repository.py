"""Traffic statistics in SQL (SQLAlchemy Core): PostgreSQL in production, SQLite locally.

A batch is written once, whole: its key goes into ``stats_batches`` in the same
transaction as its counts, so a resent batch finds its key and adds nothing, and a
failed one leaves no key behind. Each row is added to the minute, the hour and the
day it falls in (upserts that add), so the hour is the sum of its minutes by
construction and every table can be purged on its own schedule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    and_,
    delete,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from edgelib.db import Database
from sv_log.exceptions import StoreUnavailable
from sv_log.stats.schemas import BUCKETS, STEP_SECONDS, StatsRow

metadata = MetaData()
BUCKET_COLUMNS = tuple(f"b{i}" for i in range(BUCKETS))
KEY_COLUMNS = ("start", "tenant", "app", "route", "status_class")
SUM_COLUMNS = ("requests", "latency_us", *BUCKET_COLUMNS)


def _table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("start", BigInteger(), nullable=False),
        Column("tenant", String(128), nullable=False),
        Column("app", String(128), nullable=False),
        Column("route", String(256), nullable=False),
        Column("status_class", String(3), nullable=False),
        *(Column(c, BigInteger(), nullable=False) for c in SUM_COLUMNS),
        PrimaryKeyConstraint(*KEY_COLUMNS),
    )


TABLES: dict[str, Table] = {
    "minute": _table("stats_minute"),
    "hour": _table("stats_hour"),
    "day": _table("stats_day"),
}
stats_batches = Table(
    "stats_batches",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("received", BigInteger(), nullable=False),
)

Key = tuple[int, str, str, str, str]


def roll_up(rows: Sequence[StatsRow], seconds: int) -> dict[Key, list[int]]:
    """The rows added up per (start of their ``seconds`` period, tenant, app, route, class)."""
    out: dict[Key, list[int]] = {}
    for row in rows:
        key = (row.minute - row.minute % seconds, *row.key)
        sums = out.get(key)
        if sums is None:
            out[key] = [row.requests, row.latency_us, *row.buckets]
        else:
            sums[0] += row.requests
            sums[1] += row.latency_us
            for i, count in enumerate(row.buckets):
                sums[2 + i] += count
    return out


class SqlStatsStore:
    """The ``stats_*`` tables of sv-log's SQL database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.engine = database.engine
        self._insert: Any = (
            postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        )

    async def add(self, rows: Sequence[StatsRow], *, batch_key: str, now: int) -> bool:
        """Add a batch's rows once; False when ``batch_key`` was stored before (nothing added)."""
        claim = (
            self._insert(stats_batches)
            .values(key=batch_key, received=now)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(stats_batches.c.key)
        )
        try:
            async with self.engine.begin() as conn:
                if (await conn.execute(claim)).first() is None:
                    return False  # committed by an earlier send: its counts are in
                for step, table in TABLES.items():
                    sums = roll_up(rows, STEP_SECONDS[step])
                    if not sums:
                        continue
                    stmt = self._insert(table)
                    stmt = stmt.on_conflict_do_update(
                        index_elements=list(KEY_COLUMNS),
                        set_={c: table.c[c] + stmt.excluded[c] for c in SUM_COLUMNS},
                    )
                    # Sorted: concurrent batches lock shared rows in one order (no deadlock).
                    params = [
                        dict(zip(KEY_COLUMNS, key, strict=True))
                        | dict(zip(SUM_COLUMNS, values, strict=True))
                        for key, values in sorted(sums.items())
                    ]
                    await conn.execute(stmt, params)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable("the statistics database did not accept the batch") from exc
        return True

    async def sums(
        self,
        step: str,
        *,
        start: int,
        end: int,
        tenant: str | None,
        app: str | None,
        route: str | None,
        group_by: str | None,
    ) -> list[tuple[int, str, str, list[int]]]:
        """(period start, group value or "", status class, sums) for periods in [start, end)."""
        table = TABLES[step]
        c = table.c
        conds: list[ColumnElement[bool]] = [c.start >= start, c.start < end]
        if tenant is not None:
            conds.append(c.tenant == tenant)
        if app is not None:
            conds.append(c.app == app)
        if route is not None:
            conds.append(c.route == route)
        group_col = c[group_by] if group_by else None
        cols: list[Any] = [c.start, c.status_class]
        if group_col is not None:
            cols.append(group_col)
        stmt = (
            select(*cols, *(func.sum(c[s]) for s in SUM_COLUMNS))
            .where(and_(*conds))
            .group_by(*cols)
            .order_by(c.start)
        )
        try:
            async with self.engine.connect() as conn:
                result = (await conn.execute(stmt)).all()
        except (SQLAlchemyError, OSError) as exc:
            raise StoreUnavailable("the statistics database did not answer") from exc
        out = []
        for row in result:
            group = str(row[2]) if group_col is not None else ""
            values = [int(v or 0) for v in row[3 if group_col is not None else 2 :]]
            out.append((int(row[0]), group, str(row[1]), values))
        return out

    async def delete_older(self, step: str, cutoff: int) -> int:
        """Drop ``step`` periods that started before ``cutoff`` (UNIX seconds)."""
        table = TABLES[step]
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(table).where(table.c.start < cutoff))
        return int(result.rowcount or 0)

    async def forget_batches(self, cutoff: int) -> int:
        """Drop batch keys received before ``cutoff``: a resend older than that counts again."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(stats_batches).where(stats_batches.c.received < cutoff)
            )
        return int(result.rowcount or 0)
