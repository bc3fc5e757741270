"""Group commit: concurrent same-region transfers share transactions, and each still
gets its own answer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from edgelib.db import Database
from edgelib.uow import Transactions
from sv_money.batching import GroupCommit
from tests.sv_money.conftest import Money


async def _limited_funds(money: Money) -> None:
    await money.topup("alice", 1_000)
    keys = [str(uuid.uuid4()) for _ in range(30)]
    payees = ["bob", "erin"] * 15
    answers = await asyncio.gather(
        *(money.pay("alice", p, 100, key=k) for p, k in zip(payees, keys, strict=True))
    )
    codes = [a.status_code for a in answers]
    assert codes.count(201) == 10
    assert codes.count(422) == 20
    assert (await money.balance("alice"))["balance"] == 0
    assert (await money.balance("bob"))["balance"] + (await money.balance("erin"))[
        "balance"
    ] == 1_000
    # A refused transfer claimed nothing: its key works once the money is there.
    refused = keys[codes.index(422)]
    await money.topup("alice", 100)
    retried = await money.pay("alice", payees[codes.index(422)], 100, key=refused)
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    report = await money.audit("east")
    assert report["ok"], report


async def test_a_batch_books_what_the_money_allows_and_refuses_the_rest(money: Money) -> None:
    await _limited_funds(money)


@pytest.mark.integration
async def test_a_batch_books_what_the_money_allows_on_postgres(pg_money: Money) -> None:
    await _limited_funds(pg_money)


async def test_a_failing_batch_is_retried_job_by_job(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'batch.db'}")
    batches: list[list[int]] = []

    async def process(conn: AsyncConnection, jobs: Sequence[int]) -> list[int | Exception]:
        batches.append(list(jobs))
        if 13 in jobs and len(jobs) > 1:
            raise RuntimeError("one bad job spoils a batch")
        return [ValueError(j) if j == 13 else j * 2 for j in jobs]

    commit: GroupCommit[int, int] = GroupCommit(Transactions(database), process, runners=1)
    try:
        async with commit.running():
            results = await asyncio.gather(
                *(commit.submit(j) for j in (1, 13, 3)), return_exceptions=True
            )
    finally:
        await database.dispose()
    assert results[0] == 2
    assert isinstance(results[1], ValueError)
    assert results[2] == 6
    assert batches[0] == [1, 13, 3]  # together first, then alone
    assert sorted(map(tuple, batches[1:])) == [(1,), (3,), (13,)]
