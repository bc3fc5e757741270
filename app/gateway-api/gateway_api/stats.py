"""Per-tenant traffic statistics: counted in memory on the hot path, shipped in batches.

Each worker adds every answered request to one dict keyed by (minute, tenant, app,
route, status class): a ``dict.get``, three integer additions and a ``bisect`` per
request, no locks, no I/O. Every few seconds :class:`~gateway_api.statship.StatsShipper`
takes the dict whole (:meth:`TrafficStats.take`) and ships its rows to sv-log's signed
statistics intake, which adds them up per minute, hour and day (doc/tenants.md).

Counts are exact: a row is taken once, and a batch is acknowledged once it is stored
(sv-log keeps each batch's key with its counts, so a resend adds nothing). The keys
are bounded: tenants and apps come from verified tokens and routes from the route
table, and past :attr:`TrafficStats.max_keys` distinct keys in one flush window new
ones are counted under :data:`OVERFLOW` (still exact in total).

Compiled with mypyc (:mod:`gateway_api.native`): it runs once per request.
"""

from __future__ import annotations

import time
from bisect import bisect_left
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

Key = tuple[int, str, str, str, int]


def status_class(index: int) -> str:
    """``status // 100`` as sv-log's class (``4xx`` for 499, ``5xx`` beyond 599)."""
    if index < 1:
        return "1xx"
    if index > 5:
        return "5xx"
    return _CLASSES[index]


class TrafficStats:
    """One worker's counts since the last :meth:`take` (see the module's docstring)."""

    def __init__(self, max_keys: int = 50_000) -> None:
        self.max_keys = max_keys
        #: key → [requests, latency µs, bucket counts...].
        self.rows: dict[Key, list[int]] = {}
        #: Requests counted under :data:`OVERFLOW` because the window was full.
        self.overflowed = 0

    def request(self, tenant: str, app: str, route: str, status: int, seconds: float) -> None:
        """One answered request. A WebSocket tunnel (101) is counted without a latency."""
        key = (int(time.time()) // 60 * 60, tenant, app, route, status // 100)
        rows = self.rows
        row = rows.get(key)
        if row is None:
            if len(rows) >= self.max_keys:
                self.overflowed += 1
                key = (key[0], OVERFLOW, "", route, key[4])
                row = rows.get(key)
            if row is None:
                row = rows[key] = [0] * (2 + BUCKETS)
        row[0] += 1
        if status != 101:
            row[1] += int(seconds * 1_000_000)
            row[2 + bisect_left(LATENCY_BOUNDS, seconds)] += 1

    def take(self) -> dict[Key, list[int]]:
        """Everything counted since the last take; counting goes on in a new dict."""
        rows = self.rows
        self.rows = {}
        return rows


def encode_rows(rows: dict[Key, list[int]]) -> list[dict[str, Any]]:
    """Taken rows as sv-log's intake wants them (``sv_log.stats.schemas.StatsRow``)."""
    return [
        {
            "minute": minute,
            "tenant": tenant,
            "app": app,
            "route": route,
            "status_class": status_class(index),
            "requests": row[0],
            "latency_us": row[1],
            "buckets": row[2:],
        }
        for (minute, tenant, app, route, index), row in rows.items()
    ]
