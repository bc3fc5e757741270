"""Per-tenant traffic statistics: counted in memory on the hot path, shipped in batches.

Each worker adds every answered request to a dict per minute keyed by (tenant, app,
route, status class): a ``dict.get``, three integer additions and a short loop over the
latency bounds per request, no clock read, no locks, no I/O. Every few seconds
:class:`~gateway_api.statship.StatsShipper` takes the dicts whole
(:meth:`TrafficStats.take`) and ships their rows to sv-log's signed statistics intake,
which adds them up per minute, hour and day (doc/tenants.md).

Counts are exact: a row is taken once, and a batch is acknowledged once it is stored
(sv-log keeps each batch's key with its counts, so a resend adds nothing). The keys
are bounded: tenants and apps come from verified tokens and routes from the route
table, and past :attr:`TrafficStats.max_keys` distinct keys in one flush window new
ones are counted under :data:`OVERFLOW` (still exact in total).

Compiled with mypyc (:mod:`gateway_api.native`): it runs once per request.
"""

from __future__ import annotations

import time
from typing import Any

from edgelib.identity import DEFAULT_TENANT

#: Upper bounds (seconds) of the latency histogram: the request-duration buckets of
#: :mod:`gateway_api.metrics`; sv-log's ``LATENCY_BOUNDS_MS`` are the same in ms.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BUCKETS = len(LATENCY_BOUNDS) + 1
_CLASSES = ("1xx", "1xx", "2xx", "3xx", "4xx", "5xx")
#: The tenant new keys are counted under once a window holds ``max_keys`` keys.
OVERFLOW = "_overflow"
#: The tenant of requests with no caller (public routes, refusals before the token).
ANONYMOUS = DEFAULT_TENANT

Key = tuple[str, str, str, int]


def status_class(index: int) -> str:
    """``status // 100`` as sv-log's class (``4xx`` for 499, ``5xx`` beyond 599)."""
    if index < 1:
        return "1xx"
    if index > 5:
        return "5xx"
    return _CLASSES[index]


class Row:
    """One key's counts: native integers (compiled), the histogram a list."""

    def __init__(self) -> None:
        self.requests = 0
        self.latency_us = 0
        self.buckets: list[int] = [0] * BUCKETS


class TrafficStats:
    """One worker's counts since the last :meth:`take` (see the module's docstring).

    The current minute's rows are one dict keyed by (tenant, app, route, status // 100);
    a request finishing in a later minute closes it. The minute comes from the request's
    end on the monotonic clock (the proxy's ``perf_counter`` reading) plus an offset to
    wall time, refreshed at every :meth:`take`, so no clock is read per request.
    """

    def __init__(self, max_keys: int = 50_000) -> None:
        self.max_keys = max_keys
        self.minute = 0
        self.rows: dict[Key, Row] = {}
        #: Earlier minutes, closed but not taken yet.
        self.closed: list[tuple[int, dict[Key, Row]]] = []
        #: Requests counted under :data:`OVERFLOW` because the window was full.
        self.overflowed = 0
        self.clock_offset = time.time() - time.perf_counter()

    def request(
        self, tenant: str, app: str, route: str, status: int, seconds: float, finished: float
    ) -> None:
        """One answered request, ``seconds`` long, ended at ``finished``
        (``time.perf_counter()``). A WebSocket tunnel (101) is counted without a latency."""
        minute = int(finished + self.clock_offset) // 60 * 60
        if minute > self.minute:
            self._next_minute(minute)
        key = (tenant, app, route, status // 100)
        row = self.rows.get(key)
        if row is None:
            row = self._new_row(key)
        row.requests += 1
        if status != 101:
            row.latency_us += int(seconds * 1_000_000)
            index = 0
            for bound in LATENCY_BOUNDS:
                if seconds <= bound:
                    break
                index += 1
            row.buckets[index] += 1

    def _next_minute(self, minute: int) -> None:
        if self.rows:
            self.closed.append((self.minute, self.rows))
            self.rows = {}
        self.minute = minute

    def _new_row(self, key: Key) -> Row:
        rows = self.rows
        if len(rows) >= self.max_keys:
            self.overflowed += 1
            key = (OVERFLOW, "", key[2], key[3])
            row = rows.get(key)
            if row is not None:
                return row
        row = rows[key] = Row()
        return row

    def windows(self) -> list[tuple[int, dict[Key, Row]]]:
        """The minutes counted and not taken yet, oldest first (the current one last)."""
        return [*self.closed, (self.minute, self.rows)] if self.rows else list(self.closed)

    def take(self) -> list[tuple[int, dict[Key, Row]]]:
        """Everything counted since the last take; counting goes on in new dicts."""
        taken = self.windows()
        self.closed = []
        self.rows = {}
        self.clock_offset = time.time() - time.perf_counter()
        return taken


def encode_rows(windows: list[tuple[int, dict[Key, Row]]]) -> list[dict[str, Any]]:
    """Taken rows as sv-log's intake wants them (``sv_log.stats.schemas.StatsRow``)."""
    return [
        {
            "minute": minute,
            "tenant": tenant,
            "app": app,
            "route": route,
            "status_class": status_class(index),
            "requests": row.requests,
            "latency_us": row.latency_us,
            "buckets": list(row.buckets),
        }
        for minute, rows in windows
        for (tenant, app, route, index), row in rows.items()
    ]
