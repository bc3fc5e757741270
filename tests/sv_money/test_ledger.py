"""The ledger's guarantees, checked underneath the API: an append-only journal, no
overdraft even for a bypassing writer, an audit that notices tampering, and money that
is conserved under concurrent load on PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from sv_money.audit.command import audit_command
from sv_money.config import Settings
from tests.conftest import PG_URL
from tests.sv_money.conftest import Money


def east_db(tmp_path: Path) -> Path:
    return tmp_path / "east" / "data" / "sv-money-east.db"


async def test_journal_is_append_only_and_accounts_cannot_be_overdrawn(
    money: Money, tmp_path: Path
) -> None:
    await money.topup("alice", 100)
    with sqlite3.connect(east_db(tmp_path)) as db:
        for statement in (
            "UPDATE postings SET amount = amount + 1",
            "DELETE FROM postings",
            "UPDATE entries SET kind = 'x'",
            "DELETE FROM entries",
        ):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(statement)
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            db.execute("UPDATE accounts SET held = balance + 1 WHERE owner_kind = 'user'")


@pytest.mark.integration
async def test_journal_is_append_only_on_postgres(pg_money: Money, pg_schema: str) -> None:
    await pg_money.topup("alice", 100)
    engine = create_async_engine(PG_URL)
    try:
        for statement in ("UPDATE postings SET amount = amount + 1", "DELETE FROM entries"):
            async with engine.connect() as conn:
                await conn.execute(text(f'SET search_path TO "{pg_schema}_east"'))
                with pytest.raises(DBAPIError, match="append-only"):
                    await conn.execute(text(statement))
        async with engine.connect() as conn:
            await conn.execute(text(f'SET search_path TO "{pg_schema}_east"'))
            with pytest.raises(DBAPIError, match="ck_accounts_no_overdraft"):
                await conn.execute(
                    text("UPDATE accounts SET balance = -1 WHERE owner_kind = 'user'")
                )
    finally:
        await engine.dispose()


async def test_audit_reports_a_balance_that_disagrees_with_its_postings(
    money: Money, tmp_path: Path
) -> None:
    await money.topup("alice", 100)
    assert (await money.audit("east"))["ok"]
    with sqlite3.connect(east_db(tmp_path)) as db:
        db.execute("UPDATE accounts SET balance = balance + 5 WHERE owner_kind = 'user'")
        db.execute("UPDATE accounts SET held = 1 WHERE owner_kind = 'user'")
    report = await money.audit("east")
    assert not report["ok"]
    assert sorted(v["check"] for v in report["violations"]) == [
        "balance-mismatch",
        "held-mismatch",
    ]


async def test_audit_command_exits_zero_when_clean_and_one_when_not(
    money: Money, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process here; tests/e2e/test_wallet_chaos.py runs it as `python -m sv_money audit`.
    await money.topup("alice", 100)
    assert (await money.pay("alice", "bob", 40)).status_code == 201
    settings = Settings(region="east", var_dir=tmp_path / "east", peers={}, log_json=False)
    assert await audit_command([], settings) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["region"], report["checked"]["entries"]) == (True, "east", 2)
    with sqlite3.connect(east_db(tmp_path)) as db:
        db.execute("UPDATE accounts SET balance = balance - 1 WHERE owner_kind = 'user'")
    assert await audit_command([], settings) == 1
    violations = json.loads(capsys.readouterr().out)["violations"]
    assert {v["check"] for v in violations} == {"balance-mismatch"}


async def _random_load(money: Money, transfers: int) -> None:
    people = ["alice", "bob", "erin", "carol", "dave"]
    for name in people:
        await money.topup(name, 1_000)
    rng = random.Random(7)
    gate = asyncio.Semaphore(16)

    async def one() -> int:
        payer, payee = rng.sample(people, 2)
        async with gate:
            return (await money.pay(payer, payee, rng.randint(1, 400))).status_code

    codes = await asyncio.gather(*(one() for _ in range(transfers)))
    assert set(codes) <= {201, 422}
    assert codes.count(201) > transfers // 2
    total = 0
    for name in people:
        account = await money.balance(name)
        assert account["balance"] >= 0
        assert account["held"] == 0
        total += account["balance"]
    assert total == 5_000
    for region in ("east", "west"):
        report = await money.audit(region)
        assert report["ok"], report


async def test_concurrent_random_transfers_conserve_money_on_sqlite(money: Money) -> None:
    await _random_load(money, 150)


@pytest.mark.integration
async def test_concurrent_random_transfers_conserve_money_on_postgres(pg_money: Money) -> None:
    await _random_load(pg_money, 200)
