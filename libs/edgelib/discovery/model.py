"""What a discovery source reports: members of pools, and the changes between snapshots.

A pool is the instances of one service in one region (``region`` is ``None`` for a global
service). Every source (the etcd registry, Kubernetes EndpointSlices) keeps a
:class:`Membership`: the members it knows, whether that knowledge is current, and the
subscribers that hear each join, update and leave. A source that loses its backend marks
the membership stale and keeps every member (no mass removal); only the backend saying
that a member is gone removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

logger = logging.getLogger("edgelib.discovery")

PoolKey = tuple[str, str | None]
EventKind = Literal["join", "update", "leave"]


@dataclass(frozen=True, slots=True)
class Member:
    """One instance of a service as discovery sees it."""

    service: str
    region: str | None
    instance: str
    url: str
    weight: int = 1
    zone: str | None = None
    version: str | None = None
    #: When the instance started (ISO 8601, UTC), as it registered itself.
    started: str | None = None

    @property
    def pool(self) -> PoolKey:
        return (self.service, self.region)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Member:
        """A member from its registered value; ``ValueError`` when it is not one."""
        try:
            service, instance, url = raw["service"], raw["instance"], raw["url"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a member: missing {exc}") from None
        region = raw.get("region")
        weight = raw.get("weight", 1)
        texts = (service, instance, url)
        if not all(isinstance(v, str) and v for v in texts):
            raise ValueError("service, instance and url must be non-empty strings")
        if region is not None and not isinstance(region, str):
            raise ValueError("region must be a string or null")
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ValueError("weight must be an integer of at least 1")
        optional = {k: raw.get(k) for k in ("zone", "version", "started")}
        for name, value in optional.items():
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string or null")
        return cls(service, region, instance, url, weight, **optional)


@dataclass(frozen=True, slots=True)
class MembershipEvent:
    """A member joined, changed (url, weight...) or left its pool."""

    kind: EventKind
    member: Member
    #: When the source applied it (``time.monotonic()``).
    at: float = field(default_factory=time.monotonic)


class Membership:
    """The members one source knows, by pool and instance, and who listens for changes."""

    def __init__(self, source: str, *, queue_size: int = 1024) -> None:
        self.source = source
        self._members: dict[PoolKey, dict[str, Member]] = {}
        self._subscribers: set[asyncio.Queue[MembershipEvent | None]] = set()
        self._queue_size = queue_size
        #: False until the first full listing, and while the backend is unreachable.
        self.fresh = False
        self.synced = asyncio.Event()
        self.stale_since: float | None = None
        self.last_error: str | None = None
        #: Full listings applied (the first one, then one per resync).
        self.resyncs = 0
        self.dropped_events = 0

    # -- reading ------------------------------------------------------------------------

    @property
    def stale(self) -> bool:
        return not self.fresh

    def pools(self) -> dict[PoolKey, tuple[Member, ...]]:
        """Every non-empty pool, members sorted by instance id."""
        return {
            key: tuple(sorted(members.values(), key=lambda m: m.instance))
            for key, members in sorted(self._members.items(), key=lambda kv: _sort_key(kv[0]))
            if members
        }

    def pool(self, service: str, region: str | None = None) -> tuple[Member, ...]:
        members = self._members.get((service, region), {})
        return tuple(sorted(members.values(), key=lambda m: m.instance))

    def members(self) -> list[Member]:
        return [m for pool in self.pools().values() for m in pool]

    def status(self) -> dict[str, Any]:
        """A JSON-able view: freshness, counts and the last error (for ``/cluster``)."""
        return {
            "source": self.source,
            "stale": self.stale,
            "stale_for": (
                None if self.stale_since is None else round(time.monotonic() - self.stale_since, 3)
            ),
            "last_error": self.last_error,
            "resyncs": self.resyncs,
            "members": sum(len(p) for p in self._members.values()),
        }

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[MembershipEvent | None]]:
        """A queue that receives every change from now on (``None``: the source closed).

        A subscriber that falls ``queue_size`` events behind loses the overflow (counted in
        ``dropped_events``); it can always read the current pools again.
        """
        queue: asyncio.Queue[MembershipEvent | None] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    # -- writing (the source) -----------------------------------------------------------

    def replace(self, members: Iterable[Member], *, resync: bool = True) -> None:
        """A full listing: what it lacks leaves, what it adds joins, what differs updates.

        Members that did not change raise no event. ``resync`` counts it as a full
        resync (``False`` for a source that recomputes its whole view after each change).
        """
        new: dict[PoolKey, dict[str, Member]] = {}
        for member in members:
            new.setdefault(member.pool, {})[member.instance] = member
        keys = set(self._members) | set(new)
        for key in sorted(keys, key=_sort_key):
            old_pool = self._members.get(key, {})
            new_pool = new.get(key, {})
            for instance in sorted(set(old_pool) - set(new_pool)):
                self.remove(old_pool[instance])
            for instance in sorted(new_pool):
                self.upsert(new_pool[instance])
        if resync:
            self.resyncs += 1

    def upsert(self, member: Member) -> None:
        pool = self._members.setdefault(member.pool, {})
        old = pool.get(member.instance)
        if old == member:
            return
        pool[member.instance] = member
        self._emit(MembershipEvent("join" if old is None else "update", member))

    def remove(self, member: Member) -> None:
        pool = self._members.get(member.pool, {})
        if pool.pop(member.instance, None) is not None:
            self._emit(MembershipEvent("leave", member))

    def find(self, instance: str) -> Member | None:
        for pool in self._members.values():
            if instance in pool:
                return pool[instance]
        return None

    def mark_fresh(self) -> None:
        if not self.fresh:
            if self.stale_since is not None:
                logger.info("%s discovery is current again", self.source)
            self.fresh = True
            self.stale_since = None
            self.last_error = None
        self.synced.set()

    def mark_stale(self, error: BaseException | str) -> None:
        """The backend is unreachable: keep every member, say the view may be old."""
        self.last_error = error if isinstance(error, str) else _describe(error)
        if self.fresh or self.stale_since is None:
            logger.warning(
                "%s discovery is stale, keeping %d members: %s",
                self.source,
                len(self.members()),
                self.last_error,
            )
            self.stale_since = time.monotonic()
        self.fresh = False

    def close(self) -> None:
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    def _emit(self, event: MembershipEvent) -> None:
        logger.info(
            "%s: %s %s %s",
            self.source,
            event.kind,
            event.member.instance,
            event.member.url,
            extra={"discovery_event": event.kind, "service": event.member.service},
        )
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped_events += 1


def _sort_key(key: PoolKey) -> tuple[str, str]:
    return (key[0], key[1] or "")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
