"""Per-route rate limits: a sliding window per caller, shared by every gateway worker.

A route may say ``rate_limit = "100/m"`` (``N/s``, ``N/m``, ``N/h`` or ``N/<seconds>s``)
and ``rate_limit_by = "user"`` (the default on routes with a caller) or ``"ip"``. The
count is the sliding-window estimate used by Cloudflare and nginx's successors: this
fixed window's count plus the previous window's, weighted by how much of it still
overlaps the last ``period`` seconds. Over the limit the answer is 429 problem+json
with ``Retry-After`` and the ``RateLimit-*`` fields, and nothing is forwarded.

The decision is made in memory (no I/O on the request path). With a shared backend
(Redis) every worker adds what it counted to one counter per window in the backend
every ``sync_interval`` (``INCRBY`` with a TTL) and reads back the total, so workers and
gateway processes enforce one limit together; the error is bounded by what the others
counted since the last sync. When the backend fails, each worker goes on counting on
its own (fail open to per-worker limits, never to no limit) and adds its backlog on
the next good sync. With the in-process backend each process counts for itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from edgelib.tasks import cancel
from gateway_api.problems import RateLimitExceeded

if TYPE_CHECKING:
    from edgelib.backends import Backend

logger = logging.getLogger("gateway.ratelimit")

#: Windows asked about within this many seconds are refreshed from the backend each sync.
_ACTIVE = 2.0
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh])\s*$")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``limit`` requests per ``period`` seconds, counted per ``by`` (user or client IP)."""

    limit: int
    period: float
    by: Literal["user", "ip"] = "user"
    #: The counter's name: the route's (counts survive a reload of the table).
    name: str = ""

    @classmethod
    def parse(cls, spec: str, by: str = "user", *, name: str = "") -> RateLimit:
        """``"100/m"``, ``"10/s"``, ``"5000/h"``, ``"20/10s"``; raises ValueError."""
        match = _SPEC.match(spec) if isinstance(spec, str) else None
        if match is None:
            raise ValueError(f"rate_limit {spec!r} is not N/s, N/m, N/h or N/<k>s")
        limit = int(match.group(1))
        period = _UNITS[match.group(3)] * (int(match.group(2)) if match.group(2) else 1)
        if limit < 1 or period <= 0:
            raise ValueError(f"rate_limit {spec!r} must allow at least 1 request per period")
        if by not in ("user", "ip"):
            raise ValueError(f"rate_limit_by {by!r} must be user or ip")
        return cls(limit, period, by, name)  # type: ignore[arg-type]

    def describe(self) -> str:
        return f"{self.limit};w={int(self.period)}"


class _Window:
    """One bucket's count in one fixed window: shared total seen, in flight, not yet sent."""

    __slots__ = ("pending", "seen", "sending", "shared")

    def __init__(self) -> None:
        self.shared = 0
        self.sending = 0
        self.pending = 0
        self.seen = 0.0  # when a request last asked (refused ones too)

    @property
    def count(self) -> int:
        return self.shared + self.sending + self.pending


class _Bucket:
    """One (route, caller): its windows by index, and the two the last check used."""

    __slots__ = ("current", "index", "key", "period", "previous", "windows")

    def __init__(self, key: str, period: float) -> None:
        #: The backend's key stem: ``<route>|<caller>``.
        self.key = key
        self.period = period
        self.windows: dict[int, _Window] = {}
        #: The window index that ``current`` and ``previous`` are for (-1: look up).
        self.index = -1
        self.current = _Window()
        self.previous: _Window | None = None

    def move_to(self, index: int) -> None:
        current = self.windows.get(index)
        if current is None:
            current = self.windows[index] = _Window()
        self.current = current
        self.previous = self.windows.get(index - 1)
        self.index = index


class RateLimiter:
    """Counts requests per (route, caller) and refuses those over the route's limit."""

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        sync_interval: float = 0.1,
        key_prefix: str = "edge:gateway:ratelimit:",
    ) -> None:
        self.backend = backend
        self.sync_interval = sync_interval
        self.key_prefix = key_prefix
        #: Route (limit name) -> caller -> bucket: two lookups by strings that keep their
        #: hash (no key built per request).
        self._buckets: dict[str, dict[str, _Bucket]] = {}
        self._task: asyncio.Task[None] | None = None
        self.refused = 0
        self.sync_failures = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-ratelimit-sync")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
        await self.sync()  # what this worker counted still counts for the others

    # -- the per-request step -----------------------------------------------------

    def check(self, limit: RateLimit, caller: str, now: float) -> None:
        """Count one request, or raise :class:`RateLimitExceeded` (then it is not counted)."""
        period = limit.period
        position = now / period
        index = int(position)
        callers = self._buckets.get(limit.name)
        if callers is None:
            callers = self._buckets[limit.name] = {}
        bucket = callers.get(caller)
        if bucket is None or bucket.period != period:  # new, or the route's period changed
            bucket = callers[caller] = _Bucket(limit.name + "|" + caller, period)
        if bucket.index != index:
            bucket.move_to(index)
        current = bucket.current
        current.seen = now
        previous = bucket.previous
        overlap = 1.0 - (position - index)
        estimate = current.count + (previous.count * overlap if previous is not None else 0.0)
        if estimate + 1 > limit.limit + 1e-9:  # (float slack at exact window shares)
            self.refused += 1
            # When enough of the previous window has slid out for one more request.
            if previous is not None and previous.count and current.count < limit.limit:
                needed = (estimate + 1 - limit.limit) / previous.count
                wait = needed * period
            else:
                wait = (index + 1 - position) * period
            retry = max(1, math.ceil(wait))
            raise RateLimitExceeded(
                f"more than {limit.limit} requests in {period:g}s on this route",
                headers={
                    "Retry-After": str(retry),
                    "RateLimit-Limit": str(limit.limit),
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(retry),
                    "RateLimit-Policy": limit.describe(),
                },
            )
        current.pending += 1

    # -- sharing the counts -------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.sync_interval)
            try:
                await self.sync()
            except Exception:  # never let the loop die; the next round tries again
                logger.exception("rate limit sync failed")

    async def sync(self, now: float | None = None) -> None:
        """Send what was counted since the last sync; learn the others' totals; prune."""
        now = time.time() if now is None else now
        self._prune(now)
        if self.backend is None:
            return
        # What this worker counted goes out; windows asked about lately are refreshed
        # too (INCRBY 0), so a worker learns what the others counted before it decides.
        active = now - _ACTIVE
        batch = [
            (bucket, index, window)
            for callers in self._buckets.values()
            for bucket in callers.values()
            for index, window in bucket.windows.items()
            if window.pending or window.seen >= active
        ]
        for _, _, window in batch:
            window.sending, window.pending = window.pending, 0
        results = await asyncio.gather(
            *(self._send(bucket, index, window.sending) for bucket, index, window in batch),
            return_exceptions=True,
        )
        failed = False
        for (_, _, window), result in zip(batch, results, strict=True):
            sent, window.sending = window.sending, 0
            if isinstance(result, BaseException):
                window.pending += sent  # counted here all the same; sent next time
                failed = True
            else:
                # The backend's total includes what this worker sent (a lower total
                # means the backend lost its counts: keep what we know we counted).
                window.shared = max(window.shared + sent, result)
        if failed:
            self.sync_failures += 1

    async def _send(self, bucket: _Bucket, index: int, amount: int) -> int:
        assert self.backend is not None
        return await self.backend.incr(
            f"{self.key_prefix}{bucket.key}:{index}", amount, ttl=2 * bucket.period + 1
        )

    def _prune(self, now: float) -> None:
        """Forget windows that can no longer count (older than the previous one)."""
        for name, callers in list(self._buckets.items()):
            for caller, bucket in list(callers.items()):
                oldest = int(now / bucket.period) - 1
                stale = [index for index in bucket.windows if index < oldest]
                for index in stale:
                    del bucket.windows[index]
                if not bucket.windows:
                    del callers[caller]
                elif stale:
                    bucket.index = -1  # its current or previous window may be gone
            if not callers:
                del self._buckets[name]

    def snapshot(self) -> dict[str, object]:
        return {
            "buckets": sum(len(callers) for callers in self._buckets.values()),
            "windows": sum(
                len(bucket.windows)
                for callers in self._buckets.values()
                for bucket in callers.values()
            ),
            "refused": self.refused,
            "shared": self.backend is not None,
            "sync_failures": self.sync_failures,
        }
