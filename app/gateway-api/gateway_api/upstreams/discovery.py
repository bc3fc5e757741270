"""The gateway follows discovery: pools made of the members a source reports, live.

Each region's pools follow one source (``static``, ``etcd:<prefix>``, ``k8s:<namespace>``):
the region's own entry in ``GATEWAY_DISCOVERY_REGIONS``, else the default
(``GATEWAY_DISCOVERY_SOURCE``, or ``etcd:<EDGE_DISCOVERY_PREFIX>`` when the stack runs
with ``EDGE_DISCOVERY=etcd``). Global pools follow the default. A static region keeps the
topology file's pools.

Until a source has listed its members once, its pools are the topology's. After that,
every change it reports is applied to the pools in place, by instance id:

- **join**: a new :class:`Instance`, down until its first health probe (sent at once)
  passes, so it takes traffic a probe after it registered;
- **leave**: the instance is taken out of the choice; the requests it has in flight
  complete (it shows as ``draining`` in ``/cluster`` until they have);
- **update**: a new weight is applied to the same instance (its counters, breaker and
  balancer state stay); a new URL is a leave and a join.

Instances that did not change are the same objects before and after, so round-robin
positions, smooth-WRR credits, breakers and counters carry on, and a consistent-hash ring
moves only the changed instance's keys. A source that loses its backend is *stale*: it
keeps every member, so its pools stay as they were, and ``/cluster`` says so.

The members of ``gateway-api`` are not a pool: they are the gateway nodes ``/cluster`` lists.
Every gateway worker process runs its own :class:`Discovery` (they all follow).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from edgelib.discovery import Member, MembershipSource, PoolKey, SourceSpec, parse_source
from edgelib.tasks import cancel
from gateway_api.topology import InstanceSpec
from gateway_api.upstreams.pools import Instance, Pool, Upstreams

logger = logging.getLogger("gateway.discovery")

#: The service whose members are gateway nodes, not a pool.
GATEWAY_SERVICE = "gateway-api"

#: A joining instance is probed this often (seconds) until a probe passes...
JOIN_PROBE_EVERY = 0.05
#: ...for at most this long; then the periodic health checks take over.
JOIN_PROBE_FOR = 10.0

#: One region's ``endpoints`` in sv-region: service -> instance base URLs.
Endpoints = Mapping[str, tuple[str, ...]]

#: Makes the watcher for a spec (and the region it serves, for Kubernetes).
Opener = Callable[[SourceSpec, str | None], MembershipSource | None]


def parse_region_sources(value: str) -> dict[str, SourceSpec]:
    """``east=etcd:/edge/services, west=k8s:edge-west`` as specs by region."""
    found: dict[str, SourceSpec] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        region, sep, source = item.partition("=")
        region, source = region.strip(), source.strip()
        if not sep or not region:
            raise ValueError(f"{item!r} is not <region>=<source>")
        found[region] = parse_source(source)
    return found


@dataclass
class Followed:
    """One watcher the gateway follows, and what it has done to the pools."""

    name: str
    spec: SourceSpec
    source: MembershipSource
    #: The region a Kubernetes watcher serves (an etcd watcher serves every region).
    region: str | None = None
    task: asyncio.Task[None] | None = None
    #: Full passes over its pools (the first listing, then one per batch of changes).
    reconciles: int = 0
    joins: int = 0
    leaves: int = 0
    updates: int = 0
    #: Whether the first listing has been applied (before: the topology's pools).
    applied: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Discovery:
    """Keeps :class:`Upstreams` equal to the members its sources report."""

    def __init__(
        self,
        upstreams: Upstreams,
        *,
        default: SourceSpec,
        regions: Mapping[str, SourceSpec] | None = None,
        opener: Opener,
        probe: Callable[[Instance], Coroutine[Any, Any, None]] | None = None,
        on_join: Callable[[Instance], None] | None = None,
        on_leave: Callable[[Instance], None] | None = None,
        start_wait: float = 2.0,
        reap_interval: float = 0.25,
    ) -> None:
        self.upstreams = upstreams
        self.default = default
        #: The regions' sources from the settings (``GATEWAY_DISCOVERY_REGIONS``)...
        self.configured: dict[str, SourceSpec] = dict(regions or {})
        #: ...and in force: sv-region's ``discovery`` values over those (apply_regions).
        self.regions: dict[str, SourceSpec] = dict(self.configured)
        #: The regions sv-region last listed (None: not heard from it yet).
        self.directory: dict[str, SourceSpec] | None = None
        #: sv-region's ``endpoints`` of the regions that are ``static`` (service -> base
        #: URLs): a service named there has those instances instead of the topology's.
        self.endpoints: dict[str, Endpoints] = {}
        self.region_changes = 0
        self._opener = opener
        self._probe = probe
        self._on_join = on_join
        self._on_leave = on_leave
        self.start_wait = start_wait
        self.reap_interval = reap_interval
        self.followed: dict[str, Followed] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None

    # -- which source governs a pool ------------------------------------------------------

    def spec_for(self, region: str | None) -> SourceSpec:
        if region is None:
            return self.default
        return self.regions.get(region, self.default)

    def _name(self, spec: SourceSpec, region: str | None) -> str | None:
        if spec.kind == "static":
            return None
        if spec.kind == "k8s":
            return f"{spec}@{region or '-'}"
        return str(spec)

    def source_for(self, key: PoolKey) -> Followed | None:
        name = self._name(self.spec_for(key[1]), key[1])
        return None if name is None else self.followed.get(name)

    def _wanted(self) -> dict[str, tuple[SourceSpec, str | None]]:
        """Every watcher the mapping needs: one per etcd prefix, one per k8s region."""
        wanted: dict[str, tuple[SourceSpec, str | None]] = {}
        regions: list[str | None] = [None, *self.upstreams.topology.regions, *self.regions]
        for region in regions:
            spec = self.spec_for(region)
            name = self._name(spec, region)
            if name is not None and name not in wanted:
                wanted[name] = (spec, region if spec.kind == "k8s" else None)
        return wanted

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return bool(self.followed)

    async def start(self) -> None:
        """Open and start every watcher; wait up to ``start_wait`` for their first listing
        (an unreachable backend: the topology's pools, marked stale, until it answers)."""
        for name, (spec, region) in self._wanted().items():
            source = self._opener(spec, region)
            if source is None:
                continue
            followed = Followed(name, spec, source, region)
            self.followed[name] = followed
            await source.start()
        waits = [self._first_sync(f) for f in self.followed.values()]
        await asyncio.gather(*waits)
        for followed in self.followed.values():
            followed.task = asyncio.create_task(
                self._follow(followed), name=f"gateway-discovery-{followed.name}"
            )
        if self.followed:
            self._reaper = asyncio.create_task(self._reap(), name="gateway-discovery-reaper")

    async def apply_regions(
        self,
        regions: Mapping[str, SourceSpec],
        endpoints: Mapping[str, Endpoints] | None = None,
    ) -> None:
        """Follow sv-region's ``discovery`` value for each region it lists (over the
        settings' entry for that region): a new region's source is opened and its pools
        made as soon as it has listed; a region whose value changed switches source (its
        pools are reconciled against the new one, instances with the same id carry on);
        a region that became ``static`` gets its static pools back: for each service
        its ``endpoints`` in sv-region name, those URLs, else the topology's instances.
        Sources no region needs any more are closed."""
        directory = dict(regions)
        new = {**self.configured, **directory}
        listed: dict[str, Endpoints] = {
            region: dict(urls)
            for region, urls in (endpoints or {}).items()
            if region in directory and new[region].kind == "static"
        }
        if directory == self.directory and new == self.regions and listed == self.endpoints:
            return
        before = {r: self.spec_for(r) for r in {*self.regions, *new}}
        moved = {r for r in {*self.endpoints, *listed} if self.endpoints.get(r) != listed.get(r)}
        self.directory = directory
        self.regions = new
        self.endpoints = listed
        self.region_changes += 1
        changed = sorted(r for r, spec in before.items() if self.spec_for(r) != spec)
        if changed:
            logger.info(
                "region sources changed",
                extra={"regions": {r: str(self.spec_for(r)) for r in changed}},
            )
        wanted = self._wanted()
        opened = await self._open_missing(wanted)
        for region in sorted({*changed, *moved}):
            if self.spec_for(region).kind == "static":
                self._restore_static(region)
        for followed in list(self.followed.values()):
            if followed.name not in wanted:
                del self.followed[followed.name]
                await cancel(followed.task)
                await followed.source.aclose()
                logger.info("discovery source closed", extra={"source": followed.name})
            elif followed not in opened and followed.source.membership.synced.is_set():
                self.reconcile(followed)  # it may govern a region it did not before
        if self.followed and self._reaper is None:
            self._reaper = asyncio.create_task(self._reap(), name="gateway-discovery-reaper")

    async def _open_missing(
        self, wanted: dict[str, tuple[SourceSpec, str | None]]
    ) -> list[Followed]:
        """Open and follow the sources ``wanted`` names that are not followed yet; each
        applies its view once listed (a region switching keeps its pools meanwhile)."""
        opened: list[Followed] = []
        for name, (spec, region) in wanted.items():
            if name in self.followed:
                continue
            source = self._opener(spec, region)
            if source is None:
                continue
            followed = self.followed[name] = Followed(name, spec, source, region)
            await source.start()
            followed.task = asyncio.create_task(
                self._follow(followed), name=f"gateway-discovery-{followed.name}"
            )
            opened.append(followed)
        return opened

    def _static_pools(self, region: str) -> dict[PoolKey, list[InstanceSpec]]:
        """A static region's pools: the topology file's, except for each service sv-region
        gives ``endpoints`` for (those URLs; one the topology also has keeps its id)."""
        pools = {k: list(v) for k, v in self.upstreams.topology.pools().items() if k[1] == region}
        for service, urls in self.endpoints.get(region, {}).items():
            known = {s.url: s for s in pools.get((service, region), ())}
            pools[(service, region)] = [
                known.get(url)
                or InstanceSpec(service, region, url, name=endpoint_id(service, region, url))
                for url in urls
            ]
        return pools

    def _restore_static(self, region: str) -> None:
        """A region on ``static`` (again, or with other ``endpoints``): its pools are
        :meth:`_static_pools`. Instances that stay are the same objects; one added is
        down until a probe passes, as a joiner is."""
        static = self._static_pools(region)
        keys = {k for k in self.upstreams.pools if k[1] == region} | set(static)
        for key in keys:
            specs = {s.id: s for s in static.get(key, ())}
            pool = self.upstreams.ensure_pool(*key) if specs else self.upstreams.pool(*key)
            if pool is None:
                continue
            current = {i.spec.id: i for i in pool.instances}
            for instance_id, instance in current.items():
                spec = specs.get(instance_id)
                if spec is None or spec.url != instance.spec.url:
                    pool.retire(instance)
            for instance_id, spec in specs.items():
                kept = current.get(instance_id)
                if kept is None or kept.draining or kept.spec.url != spec.url:
                    instance = Instance(spec, healthy=False, joined=time.monotonic())
                    pool.add(instance)
                    self._warm(instance)

    async def _first_sync(self, followed: Followed) -> None:
        try:
            await followed.source.wait_synced(self.start_wait)
        except TimeoutError:
            logger.warning(
                "discovery source not answering at start; serving the topology's pools",
                extra={"source": followed.name, "error": followed.source.status()["last_error"]},
            )
            return
        self.reconcile(followed)

    async def stop(self) -> None:
        tasks = [f.task for f in self.followed.values() if f.task is not None]
        tasks += [*self._tasks, *([self._reaper] if self._reaper else [])]
        await cancel(*tasks)
        for followed in list(self.followed.values()):
            await followed.source.aclose()

    async def _follow(self, followed: Followed) -> None:
        membership = followed.source.membership
        async with membership.subscribe() as queue:
            # Whatever happened between the first listing and the subscription is read
            # from the snapshot; after that each batch of events is one pass.
            await membership.synced.wait()
            self.reconcile(followed)
            while True:
                event = await queue.get()
                if event is None:
                    return
                while not queue.empty():  # a burst (a resync) is one pass
                    if queue.get_nowait() is None:
                        return
                self.reconcile(followed)

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval)
            for pool in list(self.upstreams.pools.values()):
                for instance in pool.reap():
                    logger.info("instance drained", extra={"upstream": instance.spec.id})

    # -- applying a source's view ---------------------------------------------------------

    def reconcile(self, followed: Followed) -> None:
        """Make every pool ``followed`` governs hold exactly its members (by instance id)."""
        members = followed.source.membership.pools()
        keys = {k for k in self.upstreams.pools if self.source_for(k) is followed}
        keys |= {k for k in members if k[0] != GATEWAY_SERVICE and self.source_for(k) is followed}
        for key in sorted(keys, key=lambda k: (k[0], k[1] or "")):
            self._apply(followed, key, members.get(key, ()))
        followed.reconciles += 1
        followed.applied = True

    def _apply(self, followed: Followed, key: PoolKey, members: Iterable[Member]) -> None:
        wanted = {m.instance: m for m in members}
        pool = self.upstreams.ensure_pool(*key) if wanted else self.upstreams.pool(*key)
        if pool is None:
            return
        current = {i.spec.id: i for i in pool.instances}
        for instance_id, instance in current.items():
            member = wanted.get(instance_id)
            if member is None or _url(member) != instance.spec.url:
                self._leave(followed, pool, instance)
            elif member.weight != instance.spec.weight:
                instance.spec = replace(instance.spec, weight=member.weight)
                followed.updates += 1
                logger.info(
                    "instance weight changed",
                    extra={"upstream": instance_id, "weight": member.weight},
                )
        for instance_id, member in wanted.items():
            kept = current.get(instance_id)
            if kept is None or kept.draining:
                self._join(followed, pool, member)

    def _join(self, followed: Followed, pool: Pool, member: Member) -> None:
        spec = InstanceSpec(
            member.service, member.region, _url(member), member.weight, name=member.instance
        )
        # Down until a probe passes: a registered instance is not yet a tested one.
        instance = Instance(spec, healthy=False, joined=time.monotonic())
        pool.add(instance)
        followed.joins += 1
        if self._on_join is not None:
            self._on_join(instance)
        logger.info(
            "instance joined",
            extra={"upstream": spec.id, "url": spec.url, "source": followed.name},
        )
        self._warm(instance)

    def _warm(self, instance: Instance) -> None:
        if self._probe is not None:
            task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
                self._warm_up(instance)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _warm_up(self, instance: Instance) -> None:
        """Probe a joiner at once, then every ``JOIN_PROBE_EVERY`` until one passes (an
        instance may register a moment before its listener accepts), for at most
        ``JOIN_PROBE_FOR``; after that the periodic health checks carry on."""
        assert self._probe is not None
        deadline = time.monotonic() + JOIN_PROBE_FOR
        while not instance.draining:
            await self._probe(instance)
            if instance.healthy or time.monotonic() >= deadline:
                return
            await asyncio.sleep(JOIN_PROBE_EVERY)

    def _leave(self, followed: Followed, pool: Pool, instance: Instance) -> None:
        pool.retire(instance)
        followed.leaves += 1
        if self._on_leave is not None:
            self._on_leave(instance)
        logger.info(
            "instance left",
            extra={
                "upstream": instance.spec.id,
                "in_flight": instance.in_flight,
                "source": followed.name,
            },
        )

    # -- what /cluster and the metrics show -----------------------------------------------

    def metrics(self) -> list[list[Any]]:
        """Per source, for a worker's metrics snapshot: ``[name, stale (0/1), seconds
        stale, members, resyncs, joins, leaves, updates]`` (admin/metrics.py renders it)."""
        rows: list[list[Any]] = []
        for name, followed in sorted(self.followed.items()):
            membership = followed.source.membership
            since = membership.stale_since
            rows.append(
                [
                    name,
                    1 if membership.stale else 0,
                    0.0 if since is None else round(time.monotonic() - since, 3),
                    sum(len(p) for p in membership.pools().values()),
                    membership.resyncs,
                    followed.joins,
                    followed.leaves,
                    followed.updates,
                ]
            )
        return rows

    def gateways(self) -> list[dict[str, Any]]:
        """The gateway nodes registered in any source, by instance id."""
        nodes: dict[str, Member] = {}
        for followed in self.followed.values():
            for member in followed.source.membership.pool(GATEWAY_SERVICE, None):
                nodes.setdefault(member.instance, member)
        return [nodes[k].to_json() for k in sorted(nodes)]

    def status(self) -> dict[str, Any]:
        """Each source's state (``stale``, ``revision``...) and which one each region follows.

        ``stale`` at the top is true while any source is: its pools are the last known.
        """
        sources = {
            name: {
                **followed.source.status(),
                "applied": followed.applied,
                "reconciles": followed.reconciles,
                "joins": followed.joins,
                "leaves": followed.leaves,
                "updates": followed.updates,
            }
            for name, followed in self.followed.items()
        }
        regions: dict[str, dict[str, Any]] = {}
        names = [*self.upstreams.topology.regions, *self.regions]
        names += [k[1] for k in self.upstreams.pools if k[1] is not None]
        for region in dict.fromkeys(names):
            followed = self.source_for(("", region))
            if followed is None:
                regions[region] = {"source": "static", "stale": False}
                continue
            state = sources[followed.name]
            regions[region] = {
                "source": followed.name,
                "stale": state["stale"],
                "revision": state.get("revision"),
            }
        return {
            "default": str(self.default),
            "from_directory": sorted(self.directory) if self.directory is not None else None,
            "region_changes": self.region_changes,
            "stale": any(s["stale"] for s in sources.values()),
            "sources": sources,
            "regions": regions,
        }


def _url(member: Member) -> str:
    return member.url.rstrip("/")


def endpoint_id(service: str, region: str, url: str) -> str:
    """The id of an instance sv-region's ``endpoints`` name: ``sv-user-west-10.0.0.5-7301``."""
    netloc = urlsplit(url).netloc.replace(":", "-")
    return f"{service}-{region}-{netloc}"
