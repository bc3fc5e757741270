"""A floor under how soon a registration answers, so its timing tells nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi.exceptions import RequestValidationError

from edgelib.ratelimit import RateLimited
from sv_user.users.exceptions import UsernameReserved, WeakPassword

#: Refusals decided from the request alone (or the rate limits, which count taken and
#: free names alike): answering them at once tells nothing about who holds a name.
REVEALS_NOTHING: tuple[type[Exception], ...] = (
    RequestValidationError,
    UsernameReserved,
    WeakPassword,
    RateLimited,
)


class ResponseFloor:
    """Holds an answer back until ``seconds`` after it started; sleeps, spends no CPU."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Run the block; on success or a refusal that may tell, wait out the floor."""
        until = time.monotonic() + self.seconds
        try:
            yield
        except REVEALS_NOTHING:
            raise
        except Exception:
            await _sleep_until(until)
            raise
        await _sleep_until(until)


async def _sleep_until(until: float) -> None:
    remaining = until - time.monotonic()
    if remaining > 0:
        await asyncio.sleep(remaining)
