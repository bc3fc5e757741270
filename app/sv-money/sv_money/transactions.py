"""Explicit money transactions: one unit of work, committed whole or not at all.

Every write to the ledger goes through :meth:`Transactions.run`. On PostgreSQL the work
takes row locks (``SELECT ... FOR UPDATE`` in account-id order) under READ COMMITTED,
and is run again from the start on a deadlock or serialization failure. On SQLite,
writers are serialised twice: by a lock in this process, and by ``BEGIN IMMEDIATE``
across processes sharing the file, so no transaction reads a balance another is about
to change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from edgelib.db import Database

logger = logging.getLogger("sv_money.transactions")

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[T]]

#: deadlock_detected, serialization_failure, lock_not_available
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001", "55P03"})


def is_retryable(exc: DBAPIError) -> bool:
    """A failure that says nothing about the work itself: run it again."""
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in _RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(orig)


class Transactions:
    """Runs units of work against one database, with the locking it needs."""

    def __init__(self, database: Database, *, attempts: int = 8) -> None:
        self.database = database
        self.attempts = attempts
        self._sqlite = database.is_sqlite
        self._writer = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def _connection(self, write: bool) -> AsyncIterator[AsyncConnection]:
        # Connections, not ORM sessions: the ledger's SQL is Core, and a session's
        # bookkeeping would only cost time on every statement.
        if self._sqlite and write:
            async with self._writer, self.database.engine.connect() as conn:
                await conn.execute(text("BEGIN IMMEDIATE"))
                yield conn
        else:
            async with self.database.engine.connect() as conn:
                yield conn

    async def run(self, work: Work[T]) -> T:
        """Run ``work`` in one write transaction; commit when it returns, roll back if not."""
        for attempt in range(self.attempts):
            try:
                async with self._connection(write=True) as conn:
                    result = await work(conn)
                    await conn.commit()
                    return result
            except DBAPIError as exc:
                if not is_retryable(exc) or attempt == self.attempts - 1:
                    raise
                logger.info(
                    "transaction retried", extra={"attempt": attempt, "error": type(exc).__name__}
                )
                await asyncio.sleep(0.005 * (2**attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    async def read(self, work: Work[T]) -> T:
        """Run read-only ``work``; nothing it does is committed."""
        async with self._connection(write=False) as conn:
            return await work(conn)
