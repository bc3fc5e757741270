"""Quotas and flow limits: per app and per tenant (QPS, per day, concurrency), and per
route or service whoever calls (issue 19; doc/tenants.md).

auth-rbac owns the quotas (``/api/v1/quotas``). The gateway holds them all in a
:class:`QuotaBook` that follows auth-rbac like the policy does: a version on the
``edge:rbac:quotas`` channel after each change, and a poll of
``/internal/quotas?since=<version>`` every half second (:class:`QuotaFollower`).

The hot path (``proxy.py``) asks :meth:`Quotas.applicable` only while some quota
exists (``Quotas.armed``): a few dictionary lookups, no I/O. A request with limits
costs one Redis round trip (:mod:`gateway_api.security.quota_store`'s script, atomic
across every gateway); its concurrency leases are given back after the answer, in the
background. While Redis is unreachable each quota does what its ``on_redis_down``
says: ``local`` counts in this process, ``open`` admits, ``closed`` refuses (429, never
a 5xx). A refusal is 429 problem+json with ``Retry-After`` and the IETF
``RateLimit-Policy`` / ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from edgelib.identity import Identity
from gateway_api.problems import QuotaExceeded
from gateway_api.routing.table import Route
from gateway_api.security.quota_store import (
    ADMIT_LUA,
    LocalCounts,
    Refusal,
    Step,
    script_args,
)

logger = logging.getLogger("gateway.quotas")

KINDS = ("app", "tenant", "route", "service")
#: Releases waiting for Redis at most; past it a lease lapses by its TTL instead.
_MAX_RELEASES = 1000


@dataclass(frozen=True, slots=True)
class Quota:
    """One quota as auth-rbac serves it; None leaves that limit out."""

    kind: str
    tenant: str
    target: str
    qps: int | None = None
    qpd: int | None = None
    concurrency: int | None = None
    #: Requests a QPS limit lets arrive early, in emission intervals (GCRA tolerance).
    burst: int = 1
    timezone: str = "UTC"
    #: What applies while Redis is unreachable: local, open or closed.
    on_redis_down: str = "local"

    @property
    def key(self) -> str:
        """Its counters' key, below :attr:`Quotas.key_prefix`."""
        return f"{self.kind}:{self.tenant}:{self.target}"

    @property
    def label(self) -> str:
        """The policy name in the RateLimit fields (an sf-string)."""
        return self.kind if self.kind in ("app", "tenant") else f"{self.kind}-{self.target}"

    @classmethod
    def from_document(cls, item: Mapping[str, Any]) -> Quota:
        kind = str(item["kind"])
        if kind not in KINDS:
            raise ValueError(f"unknown quota kind {kind!r}")
        on_down = str(item.get("on_redis_down") or "local")
        if on_down not in ("local", "open", "closed"):
            raise ValueError(f"unknown on_redis_down {on_down!r}")
        ZoneInfo(str(item.get("timezone") or "UTC"))  # refuses an unknown zone

        def limit(name: str) -> int | None:
            value = item.get(name)
            return None if value is None else int(value)

        return cls(
            kind=kind,
            tenant=str(item.get("tenant") or "default"),
            target=str(item["target"]),
            qps=limit("qps"),
            qpd=limit("qpd"),
            concurrency=limit("concurrency"),
            burst=int(item.get("burst") or 1),
            timezone=str(item.get("timezone") or "UTC"),
            on_redis_down=on_down,
        )


class QuotaBook:
    """Every quota of one version, indexed for the hot path."""

    def __init__(self, version: int, quotas: list[Quota]) -> None:
        self.version = version
        self.quotas = quotas
        #: tenant -> app (client id) -> quota
        self.apps: dict[str, dict[str, Quota]] = {}
        self.tenants: dict[str, Quota] = {}
        self.routes: dict[str, Quota] = {}
        self.services: dict[str, Quota] = {}
        for quota in quotas:
            if quota.kind == "app":
                self.apps.setdefault(quota.tenant, {})[quota.target] = quota
            elif quota.kind == "tenant":
                self.tenants[quota.target] = quota
            elif quota.kind == "route":
                self.routes[quota.target] = quota
            else:
                self.services[quota.target] = quota

    def __len__(self) -> int:
        return len(self.quotas)


class _Day:
    """One timezone's current calendar day: its label and its bounds (epoch seconds)."""

    __slots__ = ("end", "label", "start")

    def __init__(self, zone: ZoneInfo, now: float) -> None:
        local = datetime.fromtimestamp(now, zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        following = (midnight + timedelta(days=1)).replace(tzinfo=None)
        self.label = midnight.date().isoformat()
        self.start = midnight.timestamp()
        self.end = following.replace(tzinfo=zone).timestamp()


class Lease:
    """A request's concurrency leases, given back when it ends."""

    __slots__ = ("id", "keys", "local", "owner")

    def __init__(self, owner: Quotas, lease_id: str, keys: list[str], local: bool) -> None:
        self.owner = owner
        self.id = lease_id
        self.keys = keys
        self.local = local

    def release(self) -> None:
        self.owner.release(self)


class Quotas:
    """The gateway's quotas: the book in force, and admission against Redis or locally."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        lease_ttl: float = 60.0,
        redis_timeout: float = 0.25,
        retry_redis_after: float = 1.0,
        clock: Callable[[], float] = time.time,
        key_prefix: str = "edge:quota:",
    ) -> None:
        self.book = QuotaBook(0, [])
        #: Some quota exists: the one attribute the hot path reads when there is none.
        self.armed = False
        self.clock = clock
        self.key_prefix = key_prefix
        self.lease_ttl_ms = lease_ttl * 1000
        self.retry_redis_after = retry_redis_after
        self.local = LocalCounts()
        self._redis: Any = None
        self._script: Any = None
        if redis_url and redis_url.startswith(("redis://", "rediss://", "unix://")):
            self._redis = aioredis.Redis.from_url(
                redis_url,
                socket_connect_timeout=redis_timeout,
                socket_timeout=redis_timeout,
                max_connections=64,
            )
            self._script = self._redis.register_script(ADMIT_LUA)
        self._redis_down_until = 0.0
        self._days: dict[str, _Day] = {}
        self._zones: dict[str, ZoneInfo] = {}
        self._releases: set[asyncio.Task[None]] = set()
        self.admitted = 0
        self.refused = 0
        self.redis_failures = 0
        self.fallbacks = 0

    # -- the book --------------------------------------------------------------------

    def install(self, version: int, items: list[Mapping[str, Any]]) -> None:
        """Adopt a new set of quotas (all of them; the previous book is replaced whole)."""
        quotas = [Quota.from_document(item) for item in items]
        self.book = QuotaBook(version, quotas)
        self.armed = bool(quotas)
        logger.info("quotas loaded", extra={"version": version, "quotas": len(quotas)})

    # -- the per-request step ----------------------------------------------------------

    def applicable(self, route: Route, identity: Identity | None) -> list[Quota] | None:
        """The quotas this request counts against (None: none; no I/O)."""
        book = self.book
        found: list[Quota] | None = None
        if identity is not None:
            if identity.app:
                apps = book.apps.get(identity.tenant)
                quota = apps.get(identity.app) if apps is not None else None
                if quota is not None:
                    found = [quota]
            quota = book.tenants.get(identity.tenant)
            if quota is not None:
                found = [quota] if found is None else [*found, quota]
        quota = book.routes.get(route.label or route.name)
        if quota is not None:
            found = [quota] if found is None else [*found, quota]
        quota = book.services.get(route.service)
        if quota is not None:
            found = [quota] if found is None else [*found, quota]
        return found

    async def admit(self, quotas: list[Quota]) -> Lease | None:
        """Count the request against ``quotas`` or raise :class:`QuotaExceeded` (429).

        Returns the concurrency lease to give back when the request ends (or None).
        """
        now = self.clock()
        now_ms = now * 1000
        steps, owners = self._steps(quotas, now)
        lease_id = uuid.uuid4().hex if any(s.kind == "c" for s in steps) else ""
        refusal: Refusal | None
        local = False
        if self._script is not None and now >= self._redis_down_until:
            try:
                result = await self._script(
                    keys=[s.key for s in steps],
                    args=script_args(steps, now_ms, lease_id, self.lease_ttl_ms),
                )
            except (RedisError, OSError, TimeoutError) as exc:
                self._redis_lost(now, exc)
                refusal, local = self._fallback(steps, owners, now_ms, lease_id), True
            else:
                refusal = None if int(result[0]) == 0 else Refusal(int(result[1]) - 1, result[2])
        else:
            # No Redis (the local profile), or Redis failed a moment ago.
            refusal, local = self._fallback(steps, owners, now_ms, lease_id), True
        if refusal is not None:
            self.refused += 1
            raise _refused(owners[refusal.index], steps[refusal.index], refusal.wait_ms)
        self.admitted += 1
        if not lease_id:
            return None
        keys = [s.key for s in steps if s.kind == "c"]
        return Lease(self, lease_id, keys, local)

    def release(self, lease: Lease) -> None:
        """Give a lease back: at once locally, in the background to Redis."""
        if lease.local or self._redis is None:
            self.local.release(lease.keys, lease.id)
            return
        if len(self._releases) >= _MAX_RELEASES:
            return  # the lease lapses by its TTL
        task = asyncio.get_running_loop().create_task(self._release(lease))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, lease: Lease) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in lease.keys:
                    pipe.zrem(key, lease.id)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError):
            pass  # the lease lapses by its TTL

    # -- helpers -----------------------------------------------------------------------

    def _steps(self, quotas: list[Quota], now: float) -> tuple[list[Step], list[Quota]]:
        steps: list[Step] = []
        owners: list[Quota] = []
        for quota in quotas:
            key = self.key_prefix + quota.key
            if quota.qps is not None:
                interval = 1000.0 / quota.qps
                steps.append(Step("r", key + ":r", interval, interval * quota.burst))
                owners.append(quota)
            if quota.qpd is not None:
                day = self._day(quota.timezone, now)
                steps.append(Step("d", f"{key}:d:{day.label}", quota.qpd, (day.end - now) * 1000))
                owners.append(quota)
            if quota.concurrency is not None:
                steps.append(Step("c", key + ":c", quota.concurrency, 0.0))
                owners.append(quota)
        return steps, owners

    def _day(self, timezone: str, now: float) -> _Day:
        day = self._days.get(timezone)
        if day is None or not day.start <= now < day.end:
            zone = self._zones.get(timezone)
            if zone is None:
                zone = self._zones[timezone] = ZoneInfo(timezone)
            day = self._days[timezone] = _Day(zone, now)
        return day

    def _fallback(
        self, steps: list[Step], owners: list[Quota], now_ms: float, lease_id: str
    ) -> Refusal | None:
        """Redis is unreachable: each quota's ``on_redis_down`` decides."""
        self.fallbacks += 1
        counted: list[Step] = []
        positions: list[int] = []
        for index, (step, quota) in enumerate(zip(steps, owners, strict=True)):
            if quota.on_redis_down == "closed":
                return Refusal(index, self.retry_redis_after * 1000)
            if quota.on_redis_down == "local":
                counted.append(step)
                positions.append(index)
        if not counted:
            return None
        refusal = self.local.admit(counted, now_ms, lease_id, self.lease_ttl_ms)
        if refusal is None:
            return None
        return Refusal(positions[refusal.index], refusal.wait_ms)

    def _redis_lost(self, now: float, exc: BaseException) -> None:
        if now >= self._redis_down_until:
            logger.warning(
                "quota store unreachable: quotas fall back for a while",
                extra={"error": f"{type(exc).__name__}: {exc}", "seconds": self.retry_redis_after},
            )
        self.redis_failures += 1
        self._redis_down_until = now + self.retry_redis_after

    async def close(self) -> None:
        for task in list(self._releases):
            await asyncio.wait([task], timeout=1.0)
        if self._redis is not None:
            await self._redis.aclose()

    def snapshot(self) -> dict[str, object]:
        """State for ``/cluster``."""
        return {
            "version": self.book.version,
            "quotas": len(self.book),
            "admitted": self.admitted,
            "refused": self.refused,
            "redis": None if self._redis is None else self.clock() >= self._redis_down_until,
            "redis_failures": self.redis_failures,
            "fallbacks": self.fallbacks,
        }


def _refused(quota: Quota, step: Step, wait_ms: float) -> QuotaExceeded:
    """The 429 for ``quota``'s ``step``, with Retry-After and the RateLimit fields."""
    retry = max(1, math.ceil(wait_ms / 1000))
    if step.kind == "r":
        what, limit, window = "requests per second", quota.qps, "1"
        name = quota.label + "-qps"
    elif step.kind == "d":
        what, limit, window = "requests per day", quota.qpd, "86400"
        name = quota.label + "-qpd"
    else:
        what, limit, window = "concurrent requests", quota.concurrency, ""
        name = quota.label + "-concurrency"
    policy = f'"{name}";q={limit}' + (f";w={window}" if window else "")
    subject = quota.target if quota.kind != "app" else f"app {quota.target}"
    return QuotaExceeded(
        f"{subject} is over its quota of {limit} {what}",
        headers={
            "Retry-After": str(retry),
            "RateLimit-Policy": policy,
            "RateLimit": f'"{name}";r=0;t={retry}',
        },
        quota=quota.kind,
        limit=name,
    )
