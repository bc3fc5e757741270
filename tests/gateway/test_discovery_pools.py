"""The gateway's pools follow a discovery source: joins, leaves, updates, stale sources.

The source here is a real :class:`edgelib.discovery.Membership` fed by the test (what
the etcd and EndpointSlice watchers feed); tests/gateway/test_discovery_e2e.py does the
same through a real etcd, real service processes and a real gateway process.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from aiohttp import ClientSession, web
from pydantic import ValidationError

from edgelib.backends.memory import MemoryBackend
from edgelib.discovery import Member, Membership, SourceSpec, parse_source
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from gateway_api.admin.metrics import merge, render
from gateway_api.config import Settings
from gateway_api.topology import GatewaySpec, InstanceSpec, Topology
from gateway_api.upstreams.discovery import Discovery, parse_region_sources
from gateway_api.upstreams.pools import Instance, Upstreams
from gateway_api.upstreams.region_sources import REGIONS_CHANNEL, RegionSources
from tests.worker import free_port


class FedSource:
    """A MembershipSource whose membership the test writes (as a watcher would)."""

    def __init__(self, name: str) -> None:
        self.membership = Membership(name)
        self.started = False
        self.closed = False

    async def start(self) -> None:
        self.started = True

    async def aclose(self) -> None:
        self.closed = True
        self.membership.close()

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.membership.synced.wait(), timeout)

    def status(self) -> dict[str, Any]:
        return {**self.membership.status(), "revision": 42}


def member(service: str, region: str | None, port: int, weight: int = 1) -> Member:
    suffix = f"-{region}" if region else ""
    return Member(service, region, f"{service}{suffix}-{port}", f"http://127.0.0.1:{port}", weight)


def topology(*specs: InstanceSpec, regions: tuple[str, ...] = ("east", "west")) -> Topology:
    return Topology(GatewaySpec(), regions, specs)


class Harness:
    def __init__(self, upstreams: Upstreams, sources: dict[str, FedSource]) -> None:
        self.upstreams = upstreams
        self.sources = sources
        self.probed: list[str] = []
        #: Probes that fail first (the listener not yet accepting).
        self.refuse = 0

    async def probe(self, instance: Instance) -> None:
        # The health checker's verdict: what a passing /healthz does to an instance.
        self.probed.append(instance.spec.id)
        if self.refuse:
            self.refuse -= 1
            return
        instance.healthy = True

    def discovery(self, default: str, **regions: str) -> Discovery:
        def opener(spec: SourceSpec, region: str | None) -> FedSource:
            name = f"{spec}@{region}" if spec.kind == "k8s" else str(spec)
            return self.sources.setdefault(name, FedSource(name))

        return Discovery(
            self.upstreams,
            default=parse_source(default),
            regions={r: parse_source(v) for r, v in regions.items()},
            opener=opener,
            probe=self.probe,
            start_wait=0.2,
            reap_interval=0.02,
        )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def ids(upstreams: Upstreams, service: str, region: str | None) -> list[str]:
    pool = upstreams.pool(service, region)
    return [] if pool is None else [i.spec.id for i in pool.instances]


async def test_joins_leaves_and_updates_keep_unchanged_instances_and_their_state() -> None:
    spec = InstanceSpec("sv-user", "east", "http://127.0.0.1:7201", 1, 7201)
    upstreams = Upstreams(topology(spec))
    h = Harness(upstreams, {})
    source = h.sources["etcd:/edge/services"] = FedSource("etcd:/edge/services")
    source.membership.replace([member("sv-user", "east", 7201), member("sv-user", "east", 7203)])
    source.membership.mark_fresh()
    discovery = h.discovery("etcd:/edge/services")
    await discovery.start()
    try:
        pool = upstreams.pool("sv-user", "east")
        assert pool is not None
        first = pool.instances[0]
        assert first.spec.id == "sv-user-east-7201"
        assert not first.joined
        # Balancer state before the join: the round robin has a position.
        for _ in range(3):
            pool.choose("round_robin")
        balancer = pool.balancers["round_robin"]

        source.membership.upsert(member("sv-user", "east", 7202))
        await settle()
        assert ids(upstreams, "sv-user", "east") == [
            "sv-user-east-7201",
            "sv-user-east-7203",
            "sv-user-east-7202",
        ]
        assert pool.instances[0] is first  # the same object: counters, breaker, state
        assert pool.balancers["round_robin"] is balancer
        assert h.probed == ["sv-user-east-7203", "sv-user-east-7202"]
        joined = pool.instances[2]
        assert joined.joined > 0
        assert joined.healthy
        source.membership.remove(member("sv-user", "east", 7203))
        await settle()
        assert {pool.choose("round_robin").spec.id for _ in range(4)} == {  # type: ignore[union-attr]
            "sv-user-east-7201",
            "sv-user-east-7202",
        }

        # A weight change is applied to the same instance.
        source.membership.upsert(member("sv-user", "east", 7202, weight=3))
        await settle()
        assert pool.instances[1] is joined
        assert joined.spec.weight == 3
        counts = Counter(pool.choose("weighted_round_robin").spec.id for _ in range(400))  # type: ignore[union-attr]
        assert counts == {"sv-user-east-7202": 300, "sv-user-east-7201": 100}

        # A new URL under the same id is a different instance: leave, then join.
        moved = Member("sv-user", "east", "sv-user-east-7202", "http://10.0.0.9:7202", 3)
        source.membership.upsert(moved)
        await settle()
        assert pool.instances[0] is first
        assert pool.instances[1] is not joined
        assert pool.instances[1].url == "http://10.0.0.9:7202"
        assert joined.draining

        stats = discovery.status()["sources"]["etcd:/edge/services"]
        assert (stats["joins"], stats["leaves"], stats["updates"]) == (3, 2, 1)
    finally:
        await discovery.stop()
    assert source.closed


async def test_a_leaving_instance_finishes_its_requests_in_flight_then_is_forgotten() -> None:
    upstreams = Upstreams(topology())
    h = Harness(upstreams, {})
    source = h.sources["etcd:/e"] = FedSource("etcd:/e")
    source.membership.replace([member("svc", "east", 1), member("svc", "east", 2)])
    source.membership.mark_fresh()
    discovery = h.discovery("etcd:/e")
    await discovery.start()
    try:
        await settle()
        pool = upstreams.pool("svc", "east")
        assert pool is not None
        assert len(pool.instances) == 2
        leaving = next(i for i in pool.instances if i.spec.id == "svc-east-2")
        leaving.in_flight = 2  # two requests being forwarded to it
        source.membership.remove(member("svc", "east", 2))
        await settle()
        assert [i.spec.id for i in pool.instances] == ["svc-east-1"]
        assert all(pool.choose("round_robin").spec.id == "svc-east-1" for _ in range(20))  # type: ignore[union-attr]
        shown = {i["id"]: i["state"] for i in pool.snapshot()["instances"]}  # type: ignore[attr-defined]
        assert shown == {"svc-east-1": "active", "svc-east-2": "draining"}
        await asyncio.sleep(0.1)
        assert pool.draining == [leaving]  # still in flight: still shown
        leaving.in_flight = 0  # the requests completed
        await asyncio.sleep(0.1)
        assert pool.draining == []
        assert [i["id"] for i in pool.snapshot()["instances"]] == ["svc-east-1"]  # type: ignore[attr-defined]
        # The last member leaving empties the pool (the registry said so).
        source.membership.remove(member("svc", "east", 1))
        await settle()
        assert pool.instances == []
        assert pool.choose("round_robin") is None
    finally:
        await discovery.stop()


def ring_owner(upstreams: Upstreams, keys: list[str]) -> dict[str, str]:
    pool = upstreams.pool("svc", "east")
    assert pool is not None
    return {k: pool.choose("consistent_hash", k).spec.id for k in keys}  # type: ignore[union-attr]


async def test_the_consistent_hash_ring_moves_only_the_changed_instances_keys() -> None:
    upstreams = Upstreams(topology())
    h = Harness(upstreams, {})
    source = h.sources["etcd:/e"] = FedSource("etcd:/e")
    source.membership.replace([member("svc", "east", p) for p in (1, 2, 3, 4)])
    source.membership.mark_fresh()
    discovery = h.discovery("etcd:/e")
    await discovery.start()
    keys = [f"user-{n}" for n in range(4000)]
    try:
        before = ring_owner(upstreams, keys)
        assert set(before.values()) == {f"svc-east-{p}" for p in (1, 2, 3, 4)}

        source.membership.upsert(member("svc", "east", 5))  # a join
        await settle()
        after_join = ring_owner(upstreams, keys)
        moved = {k for k in keys if after_join[k] != before[k]}
        assert moved
        assert all(after_join[k] == "svc-east-5" for k in moved)
        assert 0.1 < len(moved) / len(keys) < 0.3  # about a fifth

        source.membership.remove(member("svc", "east", 2))  # a leave
        await settle()
        after_leave = ring_owner(upstreams, keys)
        moved = {k for k in keys if after_leave[k] != after_join[k]}
        assert moved == {k for k in keys if after_join[k] == "svc-east-2"}

        source.membership.upsert(member("svc", "east", 3, weight=2))  # more weight: 3 gains
        await settle()
        after_weight = ring_owner(upstreams, keys)
        moved = {k for k in keys if after_weight[k] != after_leave[k]}
        assert moved
        assert all(after_weight[k] == "svc-east-3" for k in moved)
    finally:
        await discovery.stop()


def series(discovery: Discovery, *others: dict[str, Any]) -> dict[str, float]:
    """The gateway's /metrics text for this worker (and ``others``), as name{labels} -> value."""
    upstreams = discovery.upstreams
    mine = {
        "discovery": discovery.metrics(),
        "pools": [[p.label, len(p.instances), len(p.draining)] for p in upstreams.pools.values()],
    }
    text = render(merge([mine, *others]), workers=1 + len(others)).decode()
    found = {}
    for line in text.splitlines():
        if line.startswith(("edge_gateway_discovery", "edge_gateway_pool_instances")):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


async def test_a_stale_source_keeps_its_pools_and_says_so_until_it_resyncs() -> None:
    static = InstanceSpec("svc", "west", "http://127.0.0.1:7301", 1, 7301)
    upstreams = Upstreams(topology(static))
    h = Harness(upstreams, {})
    source = h.sources["etcd:/e"] = FedSource("etcd:/e")
    source.membership.replace([member("svc", "east", 1), member("svc", "west", 9)])
    source.membership.mark_fresh()
    discovery = h.discovery("etcd:/e", west="static")
    await discovery.start()
    try:
        await settle()
        # West is static: the topology's pool, whatever etcd says about west.
        assert ids(upstreams, "svc", "west") == ["svc-west-7301"]
        assert ids(upstreams, "svc", "east") == ["svc-east-1"]
        status = discovery.status()
        assert status["stale"] is False
        assert status["regions"]["east"] == {"source": "etcd:/e", "stale": False, "revision": 42}
        assert status["regions"]["west"] == {"source": "static", "stale": False}
        fresh = series(discovery)
        assert fresh['edge_gateway_discovery_stale{source="etcd:/e"}'] == 0
        assert fresh['edge_gateway_discovery_stale_seconds{source="etcd:/e"}'] == 0
        assert fresh['edge_gateway_discovery_members{source="etcd:/e"}'] == 2
        assert fresh['edge_gateway_pool_instances{upstream="svc/east",state="active"}'] == 1
        assert fresh['edge_gateway_discovery_changes_total{source="etcd:/e",change="join"}'] == 1

        source.membership.mark_stale("etcd: connection refused")
        await settle()
        assert ids(upstreams, "svc", "east") == ["svc-east-1"]  # no mass removal
        status = discovery.status()
        assert status["stale"] is True
        assert status["regions"]["east"]["stale"] is True
        assert status["sources"]["etcd:/e"]["last_error"] == "etcd: connection refused"
        await asyncio.sleep(0.05)
        stale = series(discovery)
        assert stale['edge_gateway_discovery_stale{source="etcd:/e"}'] == 1
        assert stale['edge_gateway_discovery_stale_seconds{source="etcd:/e"}'] >= 0.05
        assert stale['edge_gateway_discovery_members{source="etcd:/e"}'] == 2  # all kept
        assert stale['edge_gateway_pool_instances{upstream="svc/east",state="active"}'] == 1
        # Another worker that still sees it fresh does not hide it: the worst one counts.
        other = {"discovery": [["etcd:/e", 0, 0.0, 2, 1, 1, 0, 0]], "pools": []}
        assert series(discovery, other)['edge_gateway_discovery_stale{source="etcd:/e"}'] == 1

        # Back: a full listing with the differences (one left, one joined meanwhile).
        source.membership.replace([member("svc", "east", 2)])
        source.membership.mark_fresh()
        await settle()
        assert ids(upstreams, "svc", "east") == ["svc-east-2"]
        assert discovery.status()["stale"] is False
        back = series(discovery)
        assert back['edge_gateway_discovery_stale{source="etcd:/e"}'] == 0
        assert back['edge_gateway_discovery_stale_seconds{source="etcd:/e"}'] == 0
        assert back['edge_gateway_discovery_resyncs_total{source="etcd:/e"}'] == 2
        assert back['edge_gateway_discovery_changes_total{source="etcd:/e",change="leave"}'] == 1
    finally:
        await discovery.stop()


async def test_a_source_away_at_start_leaves_the_topology_pools_then_takes_over() -> None:
    spec = InstanceSpec("svc", "east", "http://127.0.0.1:7201", 1, 7201)
    upstreams = Upstreams(topology(spec))
    h = Harness(upstreams, {})
    discovery = h.discovery("etcd:/e")
    await discovery.start()  # nothing listed within start_wait
    try:
        source = h.sources["etcd:/e"]
        assert ids(upstreams, "svc", "east") == ["svc-east-7201"]
        assert discovery.status()["stale"] is True
        source.membership.replace([member("svc", "east", 7201), member("svc", "north", 7401)])
        source.membership.mark_fresh()
        await settle()
        # The same id (the instance registered itself): kept; a new region: a new pool.
        assert upstreams.pool("svc", "east").instances[0].spec is spec  # type: ignore[union-attr]
        assert ids(upstreams, "svc", "north") == ["svc-north-7401"]
        assert "north" in discovery.status()["regions"]
    finally:
        await discovery.stop()


async def test_gateway_nodes_are_listed_not_pooled_and_k8s_regions_get_their_own_watcher() -> None:
    upstreams = Upstreams(topology())
    h = Harness(upstreams, {})
    discovery = h.discovery("etcd:/e", west="k8s:edge-west")
    etcd = h.sources["etcd:/e"] = FedSource("etcd:/e")
    etcd.membership.replace([member("gateway-api", None, 7001), member("gateway-api", None, 8001)])
    etcd.membership.mark_fresh()
    kube = h.sources["k8s:edge-west@west"] = FedSource("k8s:edge-west@west")
    kube.membership.replace([member("sv-user", "west", 8080)])
    kube.membership.mark_fresh()
    await discovery.start()
    try:
        await settle()
        assert upstreams.pool("gateway-api", None) is None
        assert [g["instance"] for g in discovery.gateways()] == [
            "gateway-api-7001",
            "gateway-api-8001",
        ]
        assert ids(upstreams, "sv-user", "west") == ["sv-user-west-8080"]
        assert discovery.status()["regions"]["west"]["source"] == "k8s:edge-west@west"
        assert sorted(discovery.followed) == ["etcd:/e", "k8s:edge-west@west"]
    finally:
        await discovery.stop()


def test_settings_choose_the_source() -> None:
    assert Settings().pool_source() == SourceSpec("static")
    assert Settings(discovery="etcd").pool_source() == SourceSpec("etcd", "/edge/services")
    assert Settings(discovery_source="k8s:edge").pool_source() == SourceSpec("k8s", "edge")
    regions = Settings(discovery_regions="west=k8s:edge-west, north=static").region_sources()
    assert regions == {"west": SourceSpec("k8s", "edge-west"), "north": SourceSpec("static")}
    for bad in ({"discovery_source": "consul:x"}, {"discovery_regions": "west"}):
        with pytest.raises(ValidationError):
            Settings(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not <region>=<source>"):
        parse_region_sources("=etcd:/x")


async def test_a_joiner_takes_no_traffic_until_a_probe_passes_and_is_probed_again_at_once() -> None:
    upstreams = Upstreams(topology())
    h = Harness(upstreams, {})
    source = h.sources["etcd:/e"] = FedSource("etcd:/e")
    source.membership.replace([member("svc", "east", 1)])
    source.membership.mark_fresh()
    discovery = h.discovery("etcd:/e")
    await discovery.start()
    try:
        await asyncio.sleep(0.05)
        h.refuse = 3
        source.membership.upsert(member("svc", "east", 2))
        await settle()
        pool = upstreams.pool("svc", "east")
        assert pool is not None
        joiner = pool.instances[1]
        assert not joiner.healthy
        assert all(pool.choose("round_robin").spec.id == "svc-east-1" for _ in range(10))  # type: ignore[union-attr]
        took = 0.0
        while not joiner.healthy and took < 2:
            await asyncio.sleep(0.01)
            took += 0.01
        assert joiner.healthy
        assert h.probed.count("svc-east-2") == 4
        assert took < 0.5  # three failed probes 50 ms apart, not three health intervals
    finally:
        await discovery.stop()


async def test_sv_regions_sources_open_switch_restore_and_close_region_watchers() -> None:
    # east is static in the topology; sv-region then says where each region is found.
    spec = InstanceSpec("sv-user", "east", "http://127.0.0.1:7201", 1, 7201)
    upstreams = Upstreams(topology(spec))
    h = Harness(upstreams, {})
    discovery = h.discovery("static")
    await discovery.start()
    try:
        assert not discovery.followed
        south = h.sources["etcd:/south"] = FedSource("etcd:/south")
        south.membership.replace([member("sv-user", "south", 7301)])
        south.membership.mark_fresh()

        # A region created at runtime with its own etcd prefix: watched, pooled, probed.
        await discovery.apply_regions(
            {"east": SourceSpec("static"), **_spec("south", "etcd:/south")}
        )
        await settle()
        assert south.started
        assert ids(upstreams, "sv-user", "south") == ["sv-user-south-7301"]
        assert upstreams.pool("sv-user", "south").instances[0].healthy  # type: ignore[union-attr]
        assert ids(upstreams, "sv-user", "east") == ["sv-user-east-7201"]  # static: untouched
        assert discovery.status()["regions"]["south"]["source"] == "etcd:/south"
        south.membership.upsert(member("sv-user", "south", 7302))
        await settle()
        assert ids(upstreams, "sv-user", "south") == ["sv-user-south-7301", "sv-user-south-7302"]

        # east switches to the same prefix: its pool becomes what /south lists for east.
        south.membership.upsert(member("sv-user", "east", 7201))
        south.membership.upsert(member("sv-user", "east", 7205))
        kept = upstreams.pool("sv-user", "east").instances[0]  # type: ignore[union-attr]
        await discovery.apply_regions(_spec("east", "etcd:/south") | _spec("south", "etcd:/south"))
        await settle()
        assert ids(upstreams, "sv-user", "east") == ["sv-user-east-7201", "sv-user-east-7205"]
        assert upstreams.pool("sv-user", "east").instances[0] is kept  # type: ignore[union-attr]

        # south moves to another prefix: its pool follows the new source once listed.
        other = h.sources["etcd:/other"] = FedSource("etcd:/other")
        other.membership.replace([member("sv-user", "south", 7401)])
        other.membership.mark_fresh()
        await discovery.apply_regions(_spec("east", "etcd:/south") | _spec("south", "etcd:/other"))
        await settle()
        assert ids(upstreams, "sv-user", "south") == ["sv-user-south-7401"]
        assert not south.closed  # east still follows it

        # east back to static: the topology's instance only; /south is no longer needed.
        await discovery.apply_regions(_spec("east", "static") | _spec("south", "etcd:/other"))
        await settle()
        assert ids(upstreams, "sv-user", "east") == ["sv-user-east-7201"]
        assert south.closed
        assert set(discovery.followed) == {"etcd:/other"}
        # A region sv-region no longer lists falls back to the settings (static here).
        await discovery.apply_regions(_spec("east", "static"))
        assert other.closed
        assert discovery.status()["from_directory"] == ["east"]
    finally:
        await discovery.stop()


async def test_a_static_regions_endpoints_in_sv_region_are_its_pools() -> None:
    # west is static in the topology (one sv-user); sv-region names its endpoints.
    spec = InstanceSpec("sv-user", "west", "http://127.0.0.1:7301", 1, 7301)
    money = InstanceSpec("sv-money", "west", "http://127.0.0.1:7311", 1, 7311)
    upstreams = Upstreams(topology(spec, money))
    h = Harness(upstreams, {})
    discovery = h.discovery("static")
    await discovery.start()
    try:
        kept = upstreams.pool("sv-user", "west").instances[0]  # type: ignore[union-attr]
        urls = ("http://127.0.0.1:7301", "http://10.0.0.5:7301")
        await discovery.apply_regions(_spec("west", "static"), {"west": {"sv-user": urls}})
        await settle()
        # The topology's URL keeps its instance (and state); the other joins, probed.
        assert ids(upstreams, "sv-user", "west") == [
            "sv-user-west-7301",
            "sv-user-west-10.0.0.5-7301",
        ]
        pool = upstreams.pool("sv-user", "west")
        assert pool is not None
        assert pool.instances[0] is kept
        assert pool.instances[1].healthy
        assert "sv-user-west-10.0.0.5-7301" in h.probed
        assert ids(upstreams, "sv-money", "west") == ["sv-money-west-7311"]  # not named
        changes = discovery.region_changes
        await discovery.apply_regions(_spec("west", "static"), {"west": {"sv-user": urls}})
        assert discovery.region_changes == changes  # the same list changes nothing

        # Other endpoints: the pool follows; none any more: the topology's again.
        await discovery.apply_regions(
            _spec("west", "static"), {"west": {"sv-user": ("http://10.0.0.6:7301",)}}
        )
        assert ids(upstreams, "sv-user", "west") == ["sv-user-west-10.0.0.6-7301"]
        await discovery.apply_regions(_spec("west", "static"))
        assert ids(upstreams, "sv-user", "west") == ["sv-user-west-7301"]

        # A region that follows a registry ignores its endpoints.
        fed = h.sources["etcd:/edge"] = FedSource("etcd:/edge")
        fed.membership.replace([member("sv-user", "west", 7302)])
        fed.membership.mark_fresh()
        await discovery.apply_regions(
            _spec("west", "etcd:/edge"), {"west": {"sv-user": ("http://10.0.0.6:7301",)}}
        )
        await settle()
        assert ids(upstreams, "sv-user", "west") == ["sv-user-west-7302"]
        assert discovery.endpoints == {}
    finally:
        await discovery.stop()


def _spec(region: str, value: str) -> dict[str, SourceSpec]:
    return {region: parse_source(value)}


async def test_region_sources_read_sv_region_on_announcements_and_keep_the_last_list() -> None:
    """RegionSources against a small sv-region stand-in (aiohttp on 127.0.0.1): each
    announcement on edge.regions is a read; a failing sv-region changes nothing."""
    answer: dict[str, Any] = {"status": 200, "body": [{"name": "east", "discovery": "static"}]}
    signed: list[str] = []

    async def regions(request: web.Request) -> web.Response:
        signed.append(request.headers.get("x-edge-service", ""))
        return web.json_response(answer["body"], status=answer["status"])

    app = web.Application()
    app.router.add_get("/internal/regions", regions)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    directory = InstanceSpec("sv-region", None, f"http://127.0.0.1:{port}", 1, port)
    upstreams = Upstreams(topology(directory))
    h = Harness(upstreams, {})
    south = h.sources["etcd:/south"] = FedSource("etcd:/south")
    south.membership.replace([member("sv-user", "south", 7301)])
    south.membership.mark_fresh()
    discovery = h.discovery("static")
    await discovery.start()
    backend = MemoryBackend()
    pool = upstreams.pool("sv-region", None)
    assert pool is not None
    async with ClientSession() as session:
        follower = RegionSources(
            discovery,
            pool=pool,
            session=session,
            signer=ServiceSigner("gateway-api", DEV_SERVICE_SECRET),
            backend=backend,
            refresh=3600,
        )
        # No announcement of sv-region's can cross the in-process backend: read often.
        assert follower.refresh == 1.0
        await follower.start()
        try:
            for _ in range(200):
                if follower.reads and discovery.directory is not None:
                    break
                await asyncio.sleep(0.01)
            assert discovery.directory == {"east": SourceSpec("static")}
            assert signed[0] == "gateway-api"

            # sv-region creates south and announces it: read again, south followed.
            answer["body"] = [
                {"name": "east", "discovery": "static"},
                {"name": "south", "discovery": "etcd:/south"},
                {"name": "bad", "discovery": "ftp:/nope"},  # ignored, not fatal
                {
                    "name": "west",
                    "discovery": "static",
                    "endpoints": {
                        "sv-user": ["http://127.0.0.1:7301/", "http://127.0.0.1:7302"],
                        "sv-money": ["https://127.0.0.1:7311"],  # not plain HTTP: left out
                        "sv-notice": "http://127.0.0.1:7321",  # not a list: left out
                    },
                },
            ]
            for _ in range(200):  # the subscription is made in the background
                await backend.publish(REGIONS_CHANNEL, b"south")
                await asyncio.sleep(0.01)
                if ids(upstreams, "sv-user", "south"):
                    break
            assert ids(upstreams, "sv-user", "south") == ["sv-user-south-7301"]
            assert set(discovery.directory) == {"east", "south", "west"}
            assert discovery.endpoints == {
                "west": {"sv-user": ("http://127.0.0.1:7301", "http://127.0.0.1:7302")}
            }
            assert ids(upstreams, "sv-user", "west") == [
                "sv-user-west-127.0.0.1-7301",
                "sv-user-west-127.0.0.1-7302",
            ]
            assert upstreams.pool("sv-money", "west") is None

            # sv-region failing: the last list stays, the pools too.
            answer["status"] = 503
            reads = follower.reads
            await backend.publish(REGIONS_CHANNEL, b"*")
            for _ in range(200):
                if follower.failures:
                    break
                await asyncio.sleep(0.01)
            assert follower.failures >= 1
            assert follower.reads == reads
            assert follower.status()["last_error"] == "sv-region answered 503"
            assert ids(upstreams, "sv-user", "south") == ["sv-user-south-7301"]
            assert "etcd:/south" in discovery.followed
        finally:
            await follower.stop()
            await discovery.stop()
            await runner.cleanup()
