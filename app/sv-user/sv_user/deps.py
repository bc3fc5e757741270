"""Dependencies of sv-user's endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from edgelib.db import db_session


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async for session in db_session(request):
        yield session


# Committed before the response leaves ("function" scope): with FastAPI's default
# scope a caller could receive the answer, act on it (log in right after registering),
# and find the write not yet committed.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
