"""The unit of work every service uses: commit on success, roll back on error, then hooks.

Two shapes of the same thing:

- :func:`unit_of_work` (and :data:`SessionDep`, its request-scoped dependency) for the
  ORM: one session, committed when the block or the request ends cleanly and rolled
  back when it raises;
- :class:`Transactions` for services that run their own Core-level transactions
  (sv-money's ledger): one connection per unit, retried whole on a deadlock.

In both, work that must follow the commit (announcing a change, waking a queue) is
registered with :func:`after_commit` and runs only once the commit succeeded, never
after a rollback. A hook's failure is logged and does not undo the commit: whatever a
hook announces must also be found by a poll or a sweep.

A :class:`~edgelib.problems.Problem` whose ``commit_changes`` is true is raised *after*
the commit instead of rolling back: a refusal that must keep what it wrote (a replayed
refresh token answers 401 and its session stays revoked).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import Depends
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.requests import HTTPConnection

from edgelib.problems import Problem

if TYPE_CHECKING:
    from edgelib.db import Database

logger = logging.getLogger("edgelib.uow")

T = TypeVar("T")
#: What runs after a commit: a plain or an async callable taking nothing.
Hook = Callable[[], Awaitable[None] | None]
#: A unit of work for :meth:`Transactions.run`: given the connection, returns a value.
Work = Callable[[AsyncConnection], Awaitable[T]]

_HOOKS = "edgelib.uow.after_commit"
#: deadlock_detected, serialization_failure, lock_not_available
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001", "55P03"})


#: A connection's hooks. Not in ``conn.info``: that belongs to the pooled DBAPI
#: connection (it outlives the unit) and cannot be read once the connection is invalid.
_CONNECTION_HOOKS: weakref.WeakKeyDictionary[AsyncConnection, list[Hook]] = (
    weakref.WeakKeyDictionary()
)


def after_commit(target: AsyncSession | AsyncConnection, hook: Hook) -> None:
    """Run ``hook`` once ``target``'s transaction has committed; never if it rolls back.

    ``target`` is a session from :func:`unit_of_work`/:data:`SessionDep` or a
    connection from :class:`Transactions`: only those run the hooks.
    """
    if isinstance(target, AsyncConnection):
        _CONNECTION_HOOKS.setdefault(target, []).append(hook)
    else:
        target.info.setdefault(_HOOKS, []).append(hook)


def _take_hooks(target: AsyncSession | AsyncConnection) -> list[Hook]:
    if isinstance(target, AsyncConnection):
        return _CONNECTION_HOOKS.pop(target, [])
    hooks: list[Hook] = target.info.pop(_HOOKS, [])
    return hooks


async def _run_hooks(hooks: list[Hook]) -> None:
    for hook in hooks:
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception:
            # Committed all the same: the hook's news reaches its readers another way
            # (a poll, a sweep), only later.
            logger.exception("after-commit hook failed", extra={"hook": _name(hook)})


def _name(hook: Hook) -> str:
    return getattr(hook, "__qualname__", None) or repr(hook)


async def _commit(session: AsyncSession) -> None:
    await session.commit()
    await _run_hooks(_take_hooks(session))


async def _rollback(session: AsyncSession) -> None:
    _take_hooks(session)
    await session.rollback()


@contextlib.asynccontextmanager
async def unit_of_work(database: Database) -> AsyncIterator[AsyncSession]:
    """A session committed when the block ends cleanly and rolled back when it raises.

    Hooks given to :func:`after_commit` run after the commit, before the block's
    caller continues.
    """
    async with database.sessions() as session:
        try:
            yield session
        except Problem as exc:
            if exc.commit_changes:
                await _commit(session)
            else:
                await _rollback(session)
            raise
        except BaseException:
            await _rollback(session)
            raise
        await _commit(session)


async def _request_session(conn: HTTPConnection) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(conn.app.state.database) as session:
        yield session


# scope="function": commit (and run the hooks) before the response leaves, so a caller
# never acts on a write that is not yet visible and a failed commit is answered as an
# error.
SessionDep = Annotated[AsyncSession, Depends(_request_session, scope="function")]


def is_retryable(exc: DBAPIError) -> bool:
    """A failure that says nothing about the work itself: run it again."""
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in _RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(orig)


class Transactions:
    """Runs Core-level units of work against one database, with the locking they need.

    On PostgreSQL the work takes its own row locks (``SELECT ... FOR UPDATE``) under
    READ COMMITTED and is run again from the start on a deadlock or serialization
    failure. On SQLite, writers are serialised twice: by a lock in this process and by
    ``BEGIN IMMEDIATE`` across processes sharing the file, so no transaction reads a row
    another is about to change.
    """

    def __init__(self, database: Database, *, attempts: int = 8) -> None:
        self.database = database
        self.attempts = attempts
        self._sqlite = database.is_sqlite
        self._writer = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def _connection(self, write: bool) -> AsyncIterator[AsyncConnection]:
        # Connections, not ORM sessions: Core SQL only, and a session's bookkeeping
        # would cost time on every statement.
        if self._sqlite and write:
            async with self._writer, self.database.engine.connect() as conn:
                await conn.execute(text("BEGIN IMMEDIATE"))
                yield conn
        else:
            async with self.database.engine.connect() as conn:
                yield conn

    async def run(self, work: Work[T]) -> T:
        """Run ``work`` in one write transaction; commit when it returns, roll back if not.

        After the commit, the hooks ``work`` gave :func:`after_commit` run; the hooks of
        an attempt that failed (and is run again) are dropped with it.
        """
        for attempt in range(self.attempts):
            try:
                async with self._connection(write=True) as conn:
                    try:
                        result = await work(conn)
                        await conn.commit()
                    finally:
                        # Taken on failure too: a retried attempt's hooks go with it.
                        hooks = _take_hooks(conn)
                await _run_hooks(hooks)
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
            try:
                return await work(conn)
            finally:
                _take_hooks(conn)
