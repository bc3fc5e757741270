"""Group commit: concurrent units of work of one kind share a transaction.

A transfer costs a handful of round trips to the database whether it travels alone or
with sixty others, so under load the same-region transfers waiting at one moment are
booked together (TigerBeetle's batching, on PostgreSQL or SQLite). There is no timer:
a runner takes whatever has queued while the previous batch was being written, so a
lone request waits for nobody and a busy service writes large batches. Each job still
gets its own answer; if a batch fails as a whole, its jobs are run again one by one,
so one job's trouble never becomes another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from prometheus_client import Histogram
from sqlalchemy.ext.asyncio import AsyncConnection

from edgelib.tasks import cancel
from edgelib.uow import Transactions

logger = logging.getLogger("sv_money.batching")

BATCH_SIZE = Histogram(
    "sv_money_group_commit_batch_size",
    "Jobs booked per group-commit transaction.",
    ["name"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)

J = TypeVar("J")
R = TypeVar("R")

#: Books a batch in the given transaction: one result (or the exception to raise to
#: that job's caller) per job, in order.
Process = Callable[[AsyncConnection, Sequence[J]], Awaitable[list["R | Exception"]]]


#: Handles a batch outside any transaction of the runner's: one result (or exception) per job.
Handle = Callable[[Sequence[J]], Awaitable[list["R | Exception"]]]


class Batches(Generic[J, R]):
    """Jobs queued by many callers, handled a batch at a time by a few runners.

    There is no timer: a runner takes whatever queued while the previous batch was being
    handled (up to ``max_batch``), so a lone job waits for nobody and a busy service
    handles large batches. ``handle`` answers each job of a batch.
    """

    #: A batch that fails as a whole is handled again one job at a time (else each of
    #: its jobs gets that failure).
    split_failed = False

    def __init__(
        self, handle: Handle[J, R], *, name: str = "jobs", max_batch: int = 128, runners: int = 2
    ) -> None:
        self.handle = handle
        self._sizes = BATCH_SIZE.labels(name)
        self.max_batch = max_batch
        self.runners = runners
        self._queue: deque[tuple[J, asyncio.Future[R]]] = deque()
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Batches[J, R]]:
        """Run the batch runners while the context is open."""
        # More than one runner overlaps one batch's round trips with the next one's
        # Python work; batches lock accounts in id order, so they cannot deadlock.
        self._tasks = [
            asyncio.create_task(self._run(), name=f"batches-{n}") for n in range(self.runners)
        ]
        try:
            yield self
        finally:
            await cancel(*self._tasks)
            self._tasks = []
            while self._queue:
                _, future = self._queue.popleft()
                if not future.done():
                    future.set_exception(RuntimeError("shutting down"))

    async def submit(self, job: J) -> R:
        """Handle ``job`` in the next batch; its result, or its exception raised here."""
        if not self._tasks:
            raise RuntimeError(f"{type(self).__name__} is not running")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((job, future))
        self._ready.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            batch: list[tuple[J, asyncio.Future[R]]] = []
            while self._queue and len(batch) < self.max_batch:
                batch.append(self._queue.popleft())
            if not self._queue:
                self._ready.clear()
            if batch:
                await self._book(batch)

    async def _book(self, batch: list[tuple[J, asyncio.Future[R]]]) -> None:
        try:
            await self._book_once(batch)
        finally:
            # Cancelled mid-batch (shutdown): nobody is left waiting for an answer.
            for _, future in batch:
                if not future.done():
                    future.set_exception(RuntimeError("shutting down"))

    async def _book_once(self, batch: list[tuple[J, asyncio.Future[R]]]) -> None:
        jobs = [job for job, _ in batch]
        self._sizes.observe(len(jobs))
        try:
            results = await self.handle(jobs)
        except Exception as exc:
            if len(batch) == 1 or not self.split_failed:
                results = [exc] * len(jobs)
            else:
                logger.warning(
                    "batch failed; booking its jobs one by one",
                    extra={"jobs": len(batch), "error": type(exc).__name__},
                )
                for item in batch:
                    await self._book_once([item])
                return
        self._answer(batch, results)

    @staticmethod
    def _answer(batch: list[tuple[J, asyncio.Future[R]]], results: Sequence[R | Exception]) -> None:
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # its caller went away; the job is done all the same
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


class GroupCommit(Batches[J, R]):
    """Batches booked in one transaction each; a batch that fails as a whole is booked
    again one job at a time, so one job's trouble never becomes another's."""

    split_failed = True

    def __init__(
        self,
        tx: Transactions,
        process: Process[J, R],
        *,
        name: str = "jobs",
        max_batch: int = 128,
        runners: int = 2,
    ) -> None:
        super().__init__(self._in_transaction, name=name, max_batch=max_batch, runners=runners)
        self.tx = tx
        self.process = process

    async def _in_transaction(self, jobs: Sequence[J]) -> list[R | Exception]:
        return await self.tx.run(lambda conn: self.process(conn, jobs))
