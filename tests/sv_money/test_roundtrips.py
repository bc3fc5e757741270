"""Round trips to PostgreSQL per same-region transfer (issue 23 item 2).

Every call sv-money makes through asyncpg is counted at the driver: a statement
prepared, one executed (a prepared statement's fetch, an ``executemany``, which asyncpg
pipelines into one round trip), and each BEGIN, COMMIT and ROLLBACK. The counts are what
the database sees per transfer, alone (a batch of one) and under concurrency (group
commit), and they are bounded here so a change that adds a round trip fails.

``pytest tests/sv_money/test_roundtrips.py -s`` prints the statements of a lone transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from asyncpg.prepared_stmt import PreparedStatement

from tests.sv_money.conftest import Money, drop_schemas, open_money


@dataclass
class RoundTrips:
    """What went to the server, in order: (kind, SQL)."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.calls)

    def kinds(self) -> Counter[str]:
        return Counter(kind for kind, _ in self.calls)


@contextlib.contextmanager
def counting() -> Iterator[RoundTrips]:
    """Count asyncpg's round trips while the context is open (every connection)."""
    seen = RoundTrips()
    patches: list[tuple[type, str, Any]] = []

    def wrap(cls: type, name: str, kind: str, sql: Callable[..., str]) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            seen.calls.append((kind, sql(self, *args)))
            return await original(self, *args, **kwargs)

        patches.append((cls, name, original))
        setattr(cls, name, counted)

    def first(_self: Any, query: str = "", *_: Any) -> str:
        return " ".join(query.split())

    def statement(self: Any, *_: Any) -> str:
        return " ".join(self.get_query().split())

    wrap(asyncpg.Connection, "prepare", "prepare", first)
    wrap(asyncpg.Connection, "executemany", "executemany", first)
    wrap(asyncpg.Connection, "fetchrow", "fetchrow", first)
    wrap(asyncpg.Connection, "fetch", "fetch", first)
    wrap(asyncpg.Connection, "execute", "execute", first)
    # BEGIN, COMMIT and ROLLBACK are Connection.execute calls (asyncpg's Transaction).
    wrap(PreparedStatement, "fetch", "fetch", statement)
    try:
        yield seen
    finally:
        for cls, name, original in reversed(patches):
            setattr(cls, name, original)


async def _pay_all(pg_money: Money, pairs: list[tuple[str, str]]) -> None:
    responses = await asyncio.gather(*(pg_money.pay(a, b, 1) for a, b in pairs))
    assert [r.status_code for r in responses] == [201] * len(pairs), [
        r.text for r in responses if r.status_code != 201
    ]


@pytest.fixture
async def pg_money(tmp_path: Path, pg_schema: str) -> AsyncIterator[Money]:
    """Both regions on PostgreSQL, with the workers idle so only requests are counted."""
    quiet = {"hold_sweep_interval": 3600.0, "outbox_interval": 3600.0}
    try:
        async with open_money(tmp_path, schema=pg_schema, **quiet) as regions:
            yield regions
    finally:
        await drop_schemas(pg_schema)


@pytest.mark.integration
async def test_round_trips_per_same_region_transfer(pg_money: Money) -> None:
    for name in ("alice", "bob", "erin"):
        await pg_money.topup(name, 1_000_000)
    # Warm up: batches of every size here, then lone transfers round every pooled
    # connection, so each has prepared the statements it will meet.
    await _pay_all(pg_money, [("alice", "bob"), ("bob", "erin"), ("erin", "alice")] * 12)
    for _ in range(12):
        await _pay_all(pg_money, [("alice", "bob")])

    with counting() as alone:
        await _pay_all(pg_money, [("alice", "bob")])
    print(f"\none transfer alone: {alone.total} round trips {dict(alone.kinds())}")  # noqa: T201
    for kind, sql in alone.calls:
        print(f"  {kind:11} {sql[:110]}")  # noqa: T201

    many = 48
    with counting() as loaded:
        await _pay_all(pg_money, [("alice", "bob"), ("bob", "erin"), ("erin", "alice")] * 16)
    per = loaded.total / many
    print(f"{many} at once: {loaded.total} round trips, {per:.2f} per transfer")  # noqa: T201

    # A lone transfer: the pool's liveness check on checkout (BEGIN, ping, ROLLBACK),
    # then BEGIN, claim the key, lock the accounts, write everything, COMMIT. No
    # statement is prepared again, whatever the batch sizes before.
    assert alone.kinds()["prepare"] == 0, alone.calls
    assert alone.total <= 8, alone.calls
    # Under load the same round trips serve a whole batch.
    assert loaded.kinds()["prepare"] == 0, loaded.calls
    assert per <= 0.5, loaded.calls
