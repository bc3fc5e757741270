"""Retention: records older than their service's number of days are deleted in the background."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from edgelib.backends import Backend, BackendError
from edgelib.tasks import cancel
from sv_log.store import LogStore

if TYPE_CHECKING:
    from sv_log.stats.service import StatsService

logger = logging.getLogger("sv_log.retention")

LOCK_KEY = "sv-log:retention:lock"


@dataclass(frozen=True)
class RetentionPolicy:
    """``default_days`` for every service, unless ``by_service`` names it."""

    default_days: int
    by_service: dict[str, int] = field(default_factory=dict)

    def cutoffs(self, now: datetime) -> list[tuple[datetime, tuple[str, ...], tuple[str, ...]]]:
        """(cutoff, only these services, all but these services) for each purge to run."""
        plans: list[tuple[datetime, tuple[str, ...], tuple[str, ...]]] = [
            (now - timedelta(days=days), (service,), ())
            for service, days in sorted(self.by_service.items())
        ]
        plans.append((now - timedelta(days=self.default_days), (), tuple(sorted(self.by_service))))
        return plans


class RetentionJob:
    """Runs the policy every ``interval`` seconds; one sv-log instance per round does it."""

    def __init__(
        self,
        store: LogStore,
        policy: RetentionPolicy,
        backend: Backend,
        *,
        interval: float,
        first_run_after: float = 5.0,
        stats: StatsService | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.backend = backend
        self.interval = interval
        self.first_run_after = min(first_run_after, interval)
        self._task: asyncio.Task[None] | None = None
        #: Traffic statistics are purged in the same rounds, each step on its own schedule.
        self.stats = stats

    async def run_once(self, now: datetime | None = None) -> int:
        """Delete what the policy says is too old (and old statistics); how many rows went."""
        now = now or datetime.now(UTC)
        total = 0
        for cutoff, services, exclude in self.policy.cutoffs(now):
            total += await self.store.delete_older(cutoff, services=services, exclude=exclude)
        if self.stats is not None:
            total += await self.stats.purge(now.timestamp())
        return total

    async def _claim_round(self) -> bool:
        try:
            return await self.backend.set(
                LOCK_KEY, b"1", ttl=self.interval * 0.9, only_if_absent=True
            )
        except BackendError:
            return True  # without the lock two instances may both purge: harmless

    async def _loop(self) -> None:
        await asyncio.sleep(self.first_run_after)
        while True:
            try:
                if await self._claim_round():
                    deleted = await self.run_once()
                    logger.info("retention purge done", extra={"deleted": deleted})
            except Exception:
                logger.exception("retention purge failed; next round retries")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="sv-log-retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
