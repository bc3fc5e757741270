"""Dependencies of auth-jwt's endpoints: the request's database session.

Like edgelib's ``SessionDep`` it commits before the response leaves ("function"
scope). Two things it adds, both needed here:

- some refusals must keep what they wrote: a replayed refresh token answers 401 *and*
  revokes its session. A :class:`~edgelib.problems.Problem` whose ``commit_changes``
  is true is raised after the commit instead of rolling back;
- work registered with :func:`after_commit` (announcing revocations) runs only once
  the transaction is committed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from edgelib.db import Database
from edgelib.problems import Problem

logger = logging.getLogger("auth_jwt.deps")

_AFTER_COMMIT = "auth_jwt.after_commit"


def after_commit(session: AsyncSession, action: Callable[[], Awaitable[None]]) -> None:
    """Run ``action`` once ``session`` has committed (never if it rolls back)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


async def commit(session: AsyncSession) -> None:
    """Commit, then run the actions waiting for it; their failures are only logged."""
    await session.commit()
    actions: list[Callable[[], Awaitable[None]]] = session.info.pop(_AFTER_COMMIT, [])
    for action in actions:
        try:
            await action()
        except Exception:
            logger.exception("after-commit action failed")


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.database
    async with database.sessions() as session:
        try:
            yield session
        except Problem as exc:
            if getattr(exc, "commit_changes", False):
                await commit(session)
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        await commit(session)


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
