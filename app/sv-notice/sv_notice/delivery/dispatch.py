"""Hand new deliveries to the queue once, and only once, their transaction commits.

Pushing before the commit would let a worker look for a row it cannot see yet;
pushing after a rollback would queue a delivery that does not exist. If the push
itself fails, the rows are still in the outbox and the sweep queues them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from edgelib.uow import after_commit
from sv_notice.delivery.queue import DeliveryQueue

logger = logging.getLogger("sv_notice.delivery")


class Dispatcher:
    def __init__(self, queue: DeliveryQueue) -> None:
        self.queue = queue
        self._tasks: set[asyncio.Task[None]] = set()

    def queue_after_commit(self, session: AsyncSession, delivery_ids: Iterable[str]) -> None:
        """Queue ``delivery_ids`` when ``session`` commits; forget them if it rolls back."""
        queued = list(delivery_ids)
        if queued:
            after_commit(session, lambda: self._start_push(queued))

    def _start_push(self, queued: list[str]) -> None:
        # In the background: the answer does not wait for the queue.
        task = asyncio.get_running_loop().create_task(self._push(queued))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push(self, delivery_ids: list[str]) -> None:
        for delivery_id in delivery_ids:
            try:
                await self.queue.push(delivery_id)
            except Exception as exc:
                logger.warning(
                    "queueing a delivery failed; the outbox sweep will retry it",
                    extra={"delivery_id": delivery_id, "error": str(exc)},
                )

    async def drain(self) -> None:
        """Wait for pushes in progress (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
