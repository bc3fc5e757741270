"""Background work of sv-money: the cross-region recovery worker and hold expiry.

Both are safe to run in every instance at once: each unit of work re-reads its row
under a lock and does nothing if someone else already did it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from sv_money.crossregion.service import CrossRegionService
from sv_money.holds.service import HoldService

logger = logging.getLogger("sv_money.workers")


@contextlib.asynccontextmanager
async def periodic(
    name: str, tick: Callable[[], Awaitable[object]], interval: float, *, first_after: float = 0.0
) -> AsyncIterator[None]:
    """Run ``tick`` every ``interval`` seconds while the context is open; failures are logged.

    The first run is ``first_after`` seconds after the start (at once by default).
    """

    async def loop() -> None:
        await asyncio.sleep(first_after)
        while True:
            try:
                await tick()
            except Exception:
                logger.exception("%s failed; trying again in %.1f s", name, interval)
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop(), name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class OutboxRecovery:
    """Settles every cross-region transfer a request did not finish (timeouts, crashes)."""

    def __init__(self, crossregion: CrossRegionService, *, concurrency: int = 8) -> None:
        self.crossregion = crossregion
        self.concurrency = concurrency

    async def tick(self) -> int:
        """Deliver every due transfer once; how many got settled."""
        due = await self.crossregion.due()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(transfer_id: str) -> bool:
            async with gate:
                return await self.crossregion.deliver(transfer_id)

        settled = await asyncio.gather(*(one(t) for t in due))
        return sum(settled)


class HoldExpiry:
    """Voids holds whose time is up and releases their funds."""

    def __init__(self, holds: HoldService) -> None:
        self.holds = holds

    async def tick(self) -> int:
        return await self.holds.expire_due()
