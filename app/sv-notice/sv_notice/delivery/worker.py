"""Delivery workers: take ids off the queue, attempt the channel, record the outcome.

Each attempt is claim (one transaction), send (no transaction open), then record
(another transaction): sent; queued again with a backoff delay; or failed, which
puts it in the dead-letter list. A sweep of the database outbox re-queues what
the queue lost: everything waiting when the instance starts (after releasing the
leases its previous life held), and later anything left waiting past a grace
period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from datetime import timedelta

from prometheus_client import Counter, Histogram

from edgelib.db import Database
from sv_notice.delivery.channels import Channel, DeliveryFailed, DeliveryJob, NoticeView
from sv_notice.delivery.queue import DeliveryQueue, RetryPolicy
from sv_notice.delivery.repository import DeliveryRepository
from sv_notice.metrics import count_attempt, set_dead_letters
from sv_notice.models import utcnow

logger = logging.getLogger("sv_notice.delivery")

ATTEMPTS = Counter(
    "sv_notice_delivery_attempts_total",
    "Delivery attempts by channel and outcome.",
    ["channel", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "sv_notice_delivery_attempt_seconds", "Time one delivery attempt took.", ["channel"]
)


class DeliveryWorker:
    def __init__(
        self,
        database: Database,
        queue: DeliveryQueue,
        channels: Mapping[str, Channel],
        policy: RetryPolicy,
        *,
        owner: str,
        lease: float = 60.0,
        concurrency: int = 4,
        sweep_interval: float = 5.0,
        sweep_grace: float = 30.0,
    ) -> None:
        self.database = database
        self.queue = queue
        self.channels = channels
        self.policy = policy
        self.owner = owner
        self.lease = timedelta(seconds=lease)
        self.concurrency = concurrency
        self.sweep_interval = sweep_interval
        self.sweep_grace = timedelta(seconds=sweep_grace)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Recover what a previous life of this instance left, then start consuming."""
        async with self.database.sessions() as session, session.begin():
            released = await DeliveryRepository(session).release(self.owner)
        recovered = await self.sweep(due_before=None)
        if released or recovered:
            logger.info(
                "delivery outbox recovered",
                extra={"released_leases": released, "requeued": recovered},
            )
        self._tasks = [asyncio.create_task(self._consume()) for _ in range(self.concurrency)]
        self._tasks.append(asyncio.create_task(self._sweep_forever()))

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking work; attempts in flight get ``grace`` seconds before being cancelled.

        Tasks are let finish rather than cancelled where possible: a task cancelled
        inside a database call may leave its connection behind.
        """
        self._stopping.set()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=grace + 1.5)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks.clear()

    async def sweep(self, *, due_before: timedelta | None = None, limit: int = 1000) -> int:
        """Queue waiting deliveries again; with ``due_before``, only those overdue by it."""
        now = utcnow()
        async with self.database.sessions() as session:
            rows = await DeliveryRepository(session).waiting(
                now, due_before=None if due_before is None else now - due_before, limit=limit
            )
        for row in rows:
            due = row["next_attempt_at"]
            delay = 0.0 if due is None else max(0.0, (due - now).total_seconds())
            await self.queue.push(row["id"], delay=delay, only_if_absent=True)
        return len(rows)

    async def count_dead_letters(self) -> None:
        """Refresh the dead-letter gauge from the database (shared by every instance)."""
        async with self.database.sessions() as session:
            set_dead_letters(await DeliveryRepository(session).dead_letter_counts())

    async def _sweep_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.count_dead_letters()
            except Exception:
                logger.exception("counting dead letters failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.sweep_interval)
                return
            try:
                await self.sweep(due_before=self.sweep_grace)
            except Exception:
                logger.exception("outbox sweep failed")

    async def _consume(self) -> None:
        while not self._stopping.is_set():
            try:
                ticket = await self.queue.pop(1.0)
            except Exception as exc:
                logger.warning("queue read failed", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
                continue
            if ticket is None:
                continue
            try:
                await self.process(ticket.delivery_id)
                await self.queue.ack(ticket)
            except Exception:
                # Left unacknowledged: the outbox sweep (or another consumer) retries it.
                logger.exception(
                    "delivery attempt crashed", extra={"delivery_id": ticket.delivery_id}
                )
                await asyncio.sleep(0.5)

    async def process(self, delivery_id: str) -> str:
        """Attempt one delivery if it can be claimed; returns what happened."""
        now = utcnow()
        async with self.database.sessions() as session, session.begin():
            repository = DeliveryRepository(session)
            if not await repository.claim(delivery_id, self.owner, now, self.lease):
                return "skipped"
            row = await repository.job(delivery_id)
        if row is None:
            return "skipped"
        job = DeliveryJob(
            delivery_id=delivery_id,
            channel=row["channel"],
            attempt=int(row["attempts"]),
            notice=NoticeView(
                id=row["id"],
                user_id=row["user_id"],
                category=row["category"],
                title=row["title"],
                body=row["body"],
                locale=row["locale"],
                data=dict(row["data"] or {}),
                created_at=row["created_at"],
            ),
            email=row["email"],
            webhook_url=row["webhook_url"],
            webhook_secret=row["webhook_secret"],
        )
        outcome, reason = await self._attempt(job)
        done = utcnow()
        async with self.database.sessions() as session, session.begin():
            repository = DeliveryRepository(session)
            if outcome == "sent":
                await repository.mark_sent(delivery_id, self.owner, done)
            elif outcome == "retry":
                delay = self.policy.delay(job.attempt)
                due = done + timedelta(seconds=delay)
                await repository.mark_retry(delivery_id, self.owner, done, due, reason)
            else:
                await repository.mark_failed(delivery_id, self.owner, done, reason)
        if outcome == "retry":
            await self.queue.push(delivery_id, delay=(due - utcnow()).total_seconds())
        ATTEMPTS.labels(job.channel, outcome).inc()
        count_attempt(job.channel, outcome)
        log = logger.info if outcome == "sent" else logger.warning
        log(
            "delivery %s",
            outcome,
            extra={
                "delivery_id": delivery_id,
                "notice_id": job.notice.id,
                "channel": job.channel,
                "attempt": job.attempt,
                "reason": reason or None,
            },
        )
        return outcome

    async def _attempt(self, job: DeliveryJob) -> tuple[str, str]:
        channel = self.channels.get(job.channel)
        if channel is None:
            return "failed", f"channel {job.channel} is not available on this instance"
        started = time.perf_counter()
        try:
            await channel.send(job)
        except DeliveryFailed as exc:
            if exc.permanent or self.policy.exhausted(job.attempt):
                suffix = "" if exc.permanent else f" (gave up after {job.attempt} attempts)"
                return "failed", exc.reason + suffix
            return "retry", exc.reason
        except Exception as exc:
            logger.exception("channel %s crashed", job.channel)
            reason = f"internal error ({type(exc).__name__})"
            if self.policy.exhausted(job.attempt):
                return "failed", reason + f" (gave up after {job.attempt} attempts)"
            return "retry", reason
        finally:
            ATTEMPT_SECONDS.labels(job.channel).observe(time.perf_counter() - started)
        return "sent", ""
