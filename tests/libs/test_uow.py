"""The unit of work: commit on success, roll back on error, hooks only after a commit.

Each test runs on SQLite and on the real PostgreSQL (a fresh schema).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from edgelib.db import Database, ensure_schema
from edgelib.problems import Conflict, Unauthorized, install_problem_handlers
from edgelib.uow import SessionDep, Transactions, after_commit, unit_of_work


class Revoked(Unauthorized):
    """A refusal that keeps what it wrote."""

    type_slug, title = "revoked", "Revoked"
    commit_changes = True


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.integration),
    ]
)
async def database(
    request: pytest.FixtureRequest, tmp_path: Path, pg_url: str
) -> AsyncIterator[Database]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/uow.db")
    else:
        db = Database(pg_url, schema=schema)
        await ensure_schema(db)
    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE items (name VARCHAR(40) PRIMARY KEY)"))
    yield db
    if not db.is_sqlite:
        async with db.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await db.dispose()


async def _names(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        return [r[0] for r in await conn.execute(text("SELECT name FROM items ORDER BY name"))]


async def _insert(conn: AsyncConnection | AsyncSession, name: str) -> None:
    await conn.execute(text("INSERT INTO items (name) VALUES (:n)"), {"n": name})


async def test_a_clean_block_commits_then_runs_its_hooks_in_order(database: Database) -> None:
    seen: list[tuple[str, list[str]]] = []

    async def first() -> None:
        # The commit is visible from another connection when the hook runs.
        seen.append(("first", await _names(database)))

    async with unit_of_work(database) as session:
        await _insert(session, "a")
        after_commit(session, first)
        after_commit(session, lambda: seen.append(("second", [])))
        assert seen == []
    assert seen == [("first", ["a"]), ("second", [])]
    assert await _names(database) == ["a"]


async def _write_then_fail(database: Database, name: str, ran: list[str], error: Exception) -> None:
    async with unit_of_work(database) as session:
        await _insert(session, name)
        after_commit(session, lambda: ran.append(name))
        raise error


async def test_an_error_rolls_back_and_drops_the_hooks(database: Database) -> None:
    ran: list[str] = []
    with pytest.raises(RuntimeError):
        await _write_then_fail(database, "a", ran, RuntimeError("work failed"))
    assert ran == []
    assert await _names(database) == []


async def test_a_problem_rolls_back_unless_it_asks_to_keep_the_changes(
    database: Database,
) -> None:
    ran: list[str] = []
    with pytest.raises(Conflict):
        await _write_then_fail(database, "plain", ran, Conflict("no"))
    with pytest.raises(Revoked):
        await _write_then_fail(database, "kept", ran, Revoked("token reused"))
    assert ran == ["kept"]
    assert await _names(database) == ["kept"]


async def test_a_failing_hook_is_logged_and_neither_undoes_the_commit_nor_stops_the_rest(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise ConnectionError("pub/sub away")

    with caplog.at_level(logging.ERROR, logger="edgelib.uow"):
        async with unit_of_work(database) as session:
            await _insert(session, "a")
            after_commit(session, broken)
            after_commit(session, lambda: ran.append("after"))
    assert ran == ["after"]
    assert await _names(database) == ["a"]
    assert [r.getMessage() for r in caplog.records] == ["after-commit hook failed"]


def _app(database: Database, events: list[str]) -> FastAPI:
    app = FastAPI()
    app.state.database = database
    install_problem_handlers(app)

    @app.post("/items/{name}")
    async def create(name: str, session: SessionDep) -> list[str]:
        await _insert(session, name)

        async def hook() -> None:
            events.append(f"committed {name}")

        after_commit(session, hook)
        if name.startswith("revoke"):
            raise Revoked("kept, and refused")
        if name.startswith("conflict"):
            raise Conflict("refused")
        return events

    return app


async def test_session_dep_commits_and_runs_hooks_before_the_response_leaves(
    database: Database,
) -> None:
    events: list[str] = []
    transport = httpx.ASGITransport(app=_app(database, events))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        ok = await client.post("/items/a")
        # Hooks ran by the time the client holds the answer.
        assert ok.status_code == 200
        assert events == ["committed a"]
        assert await _names(database) == ["a"]

        refused = await client.post("/items/conflict")
        assert refused.status_code == 409
        assert refused.headers["content-type"].startswith("application/problem+json")

        kept = await client.post("/items/revoke")
        assert kept.status_code == 401
        assert kept.json()["type"].endswith("revoked")
    assert events == ["committed a", "committed revoke"]
    assert await _names(database) == ["a", "revoke"]


async def test_transactions_run_commits_then_runs_the_hooks(database: Database) -> None:
    tx = Transactions(database)
    seen: list[list[str]] = []

    async def work(conn: AsyncConnection) -> str:
        await _insert(conn, "a")

        async def hook() -> None:
            seen.append(await _names(database))

        after_commit(conn, hook)
        return "done"

    assert await tx.run(work) == "done"
    assert seen == [["a"]]


async def test_transactions_roll_back_a_failed_unit_and_drop_its_hooks(
    database: Database,
) -> None:
    tx = Transactions(database)
    ran: list[str] = []

    async def work(conn: AsyncConnection) -> None:
        await _insert(conn, "a")
        after_commit(conn, lambda: ran.append("hook"))
        raise ValueError("rule broken")

    with pytest.raises(ValueError, match="rule broken"):
        await tx.run(work)
    assert ran == []
    assert await _names(database) == []

    # The next unit (on the same pooled connection) runs none of the failed unit's hooks.
    async def nothing(conn: AsyncConnection) -> None:
        return None

    await tx.run(nothing)
    assert ran == []


async def test_a_retried_unit_runs_only_the_hooks_of_the_attempt_that_committed(
    database: Database,
) -> None:
    tx = Transactions(database)
    ran: list[int] = []
    attempts = 0

    async def work(conn: AsyncConnection) -> None:
        nonlocal attempts
        attempts += 1
        attempt = attempts
        await _insert(conn, f"try{attempt}")
        after_commit(conn, lambda: ran.append(attempt))
        if attempt == 1:
            raise DBAPIError("INSERT", {}, Exception("database is locked"))

    await tx.run(work)
    assert attempts == 2
    assert ran == [2]
    assert await _names(database) == ["try2"]
