"""Live discovery on the real platform stack (issue 18, must-shows 1-6).

One stack, ``edgectl up`` with ``EDGE_DISCOVERY=etcd``, on an etcd of its own (which
these tests stop and start). Every process registers; the gateway's pools follow etcd.
Load is six client threads of ``GET /api/v1/users?limit=1`` (sv-user's user list, round
robin over the pool of the caller's region) as the bootstrap admin, a signed-in user
whose home is east; the gateway names the instance that answered
(``GATEWAY_EXPOSE_INSTANCE``). The tests run in order on the same stack:

1. ``edgectl scale sv-user --region east --instances 3``: the third instance's share;
2. ``edgectl scale ... --instances 2``: the supervisor SIGTERMs it (deregistered, drained);
3. ``kill -9`` of an instance: gone from ``/cluster`` within the lease TTL + 1 s;
4. etcd stopped for 30 s: pools kept, stale shown, resync when it returns;
5. a second gateway (the stack's own gateway spec on other ports): they list each other;
6. a region created through sv-region's API at runtime: routable within 2 s (and then
   moved to a static list of ``endpoints`` in sv-region, which the gateway follows).

Run with ``-s`` to see the numbers recorded in doc/discovery.md.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from edgectl.processes import ProcessSpec, process_specs
from edgectl.registry import load_registry
from edgectl.scale import copy_spec
from edgelib.topology import load_topology
from tests import helpers
from tests.e2e.accounts import admin as admin_headers
from tests.e2e.conftest import ROOT, Stack, Stacks, instance_id
from tests.libs.discovery.etcd_server import EtcdServer
from tests.worker import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

FLAVOUR = "discovery"
#: The lease TTL every process of this stack registers with (the default is 10 s).
TTL = 5
OUTAGE = 30.0
EAST_A = instance_id("sv-user", 7201, "east")  # weight 3 in deploy/local/topology.toml
EAST_B = instance_id("sv-user", 7202, "east")  # weight 1
#: Routed by the caller's home region (round robin); the admin holds ``users:list``.
LIST = "/api/v1/users?limit=1"
#: Public: routed to the gateway's default region (no caller).
ABOUT = "/api/v1/users/about"


def say(text: str) -> None:
    """A measured number (``-s`` shows it; doc/discovery.md records it)."""
    print(f"[discovery-stack] {text}", flush=True)  # noqa: T201


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    return helpers.wait_for(condition, timeout, what, interval=0.02)


@dataclass
class Load:
    """Six threads of GETs through the gateway; every answer and failure recorded."""

    url: str
    headers: dict[str, str]
    threads: int = 6
    served: list[tuple[float, str]] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._workers.append(thread)
        wait_for(lambda: len(self.served) > 30, 30, "load flowing")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(15)

    def _run(self) -> None:
        with httpx.Client(timeout=10, headers=self.headers) as client:
            while not self._stop.is_set():
                try:
                    resp = client.get(self.url)
                except httpx.HTTPError as exc:
                    self.failures.append((time.monotonic(), repr(exc)))
                    continue
                if resp.status_code != 200:
                    self.failures.append((time.monotonic(), f"{resp.status_code} {resp.text}"))
                else:
                    self.served.append((time.monotonic(), resp.headers["x-edge-instance"]))

    def share(self, since: float, until: float = float("inf")) -> Counter[str]:
        return Counter(i for t, i in list(self.served) if since <= t < until)

    def first_from(self, instance: str) -> float | None:
        return next((t for t, i in list(self.served) if i == instance), None)


@dataclass
class PoolWatch:
    """Polls the gateway's east sv-user pool every 20 ms: when each instance joined
    (first seen ``active/up``) and left (last seen at all), monotonic times."""

    admin: str
    up: dict[str, float] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    gone: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> PoolWatch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop.is_set():
                try:
                    pool = east_pool(client.get(self.admin + "/cluster").json())
                except (httpx.HTTPError, ValueError):
                    time.sleep(0.02)
                    continue
                now = time.monotonic()
                for instance, state in pool.items():
                    self.seen[instance] = now
                    self.gone.pop(instance, None)
                    if state == "active/up":
                        self.up.setdefault(instance, now)
                for instance in set(self.seen) - set(pool):
                    self.gone.setdefault(instance, now)
                time.sleep(0.02)


def east_pool(cluster: dict[str, Any]) -> dict[str, str]:
    """The east sv-user instances in /cluster: id -> ``state/health``."""
    for pool in cluster["services"]:
        if pool["service"] == "sv-user" and pool["region"] == "east":
            return {i["id"]: f"{i['state']}/{i['health']}" for i in pool["instances"]}
    return {}


@dataclass
class DiscoveryStack:
    stack: Stack
    etcd: EtcdServer
    headers: dict[str, str]

    @property
    def topology(self) -> Path:
        return self.stack.var_dir.parent / "topology.toml"

    def cluster(self, admin: str | None = None) -> dict[str, Any]:
        resp = httpx.get((admin or self.stack.admin) + "/cluster", timeout=3)
        return resp.json()  # type: ignore[no-any-return]

    def pool(self) -> dict[str, str]:
        return east_pool(self.cluster())

    def load(self) -> Load:
        return Load(self.stack.public + LIST, self.headers)

    def edgectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m edgectl <args>`` against this stack, as a person would run it."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "edgectl",
                "--topology",
                str(self.topology),
                "--var-dir",
                str(self.stack.var_dir),
                *args,
            ],
            cwd=ROOT,
            env=self.stack.env,
            capture_output=True,
            text=True,
            timeout=150,
            check=False,
        )

    def scale(self, instances: int) -> list[str]:
        """``edgectl scale sv-user --region east --instances N``: its output lines."""
        done = self.edgectl("scale", "sv-user", "--region", "east", "--instances", str(instances))
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.splitlines()

    def logged_at(self, instance: str, message: str, timeout: float = 5.0) -> float:
        """When ``instance`` logged ``message`` first, as a ``time.monotonic()`` value
        (services write their log lines in batches: waits up to ``timeout`` for it)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.stack.log_lines(instance):
                if message in line:
                    wall = datetime.fromisoformat(orjson.loads(line)["ts"]).timestamp()
                    return time.monotonic() - (time.time() - wall)
            if time.monotonic() > deadline:
                raise AssertionError(f"{instance} never logged {message!r}")
            time.sleep(0.05)

    def gateway_left(self, instance: str, timeout: float = 5.0) -> tuple[float, int]:
        """When the gateway took ``instance`` out of its pool (its ``instance left`` log
        line, as a ``time.monotonic()`` value) and how many requests it had in flight."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.stack.log_lines("gateway-api"):
                if '"instance left"' in line:
                    record = orjson.loads(line)
                    if record.get("upstream") == instance:
                        wall = datetime.fromisoformat(record["ts"]).timestamp()
                        since = time.time() - wall
                        return time.monotonic() - since, int(record["in_flight"])
            if time.monotonic() > deadline:
                raise AssertionError(f"the gateway never logged {instance} leaving")
            time.sleep(0.05)

    def spawn(self, spec: ProcessSpec) -> subprocess.Popen[bytes]:
        """``spec`` run as edgectl runs a child (the stack's settings, then the spec's),
        but by this test: nothing restarts it. Its log is var/log/<name>.log."""
        with (self.stack.var_dir / "log" / f"{spec.name}.log").open("ab") as log:
            return subprocess.Popen(
                spec.argv,
                cwd=ROOT,
                env={**self.stack.env, **spec.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def registered(self, key: str) -> bool:
        body = orjson.dumps({"key": base64.b64encode(key.encode()).decode()})
        resp = httpx.post(f"{self.etcd.url}/v3/kv/range", content=body, timeout=2)
        return bool(resp.json().get("kvs"))

    def metric(self, name: str, admin: str | None = None) -> float:
        text = httpx.get((admin or self.stack.admin) + "/metrics", timeout=3).text
        found = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
        assert found, f"{name} not in /metrics"
        return float(found.group(1))


@pytest.fixture(scope="module")
def discovery(stacks: Stacks, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiscoveryStack]:
    etcd = EtcdServer(tmp_path_factory.mktemp("discovery-etcd") / "etcd")
    etcd.start()
    try:
        env = {
            "EDGE_DISCOVERY": "etcd",
            "EDGE_ETCD_URL": etcd.url,
            "EDGE_DISCOVERY_TTL": str(TTL),
        }
        stack = stacks.get(FLAVOUR, env)
        try:
            say(f"stack up in {stack.ready_seconds:.1f}s")
            yield DiscoveryStack(stack, etcd, admin_headers(stack))
        finally:
            stacks.stop(FLAVOUR)
    finally:
        etcd.stop()


def test_a_third_east_instance_serves_a_fifth_of_requests_within_3s(
    discovery: DiscoveryStack,
) -> None:
    both = {EAST_A: "active/up", EAST_B: "active/up"}
    wait_for(lambda: discovery.pool() == both, 30, "the topology's two east instances up")
    status = discovery.cluster()["discovery"]
    assert status["stale"] is False
    assert status["regions"]["east"]["source"] == "etcd:/edge/services"
    with PoolWatch(discovery.stack.admin) as watch, discovery.load() as load:
        lines = discovery.scale(3)
        started = [line.split()[1] for line in lines if line.startswith("started ")]
        assert len(started) == 1, lines
        third = started[0]
        assert third.startswith("sv-user-east-")
        registered = discovery.logged_at(third, "discovery: registered")
        time.sleep(max(0.0, registered + 3.2 - time.monotonic()))
        first = load.first_from(third)
        assert first is not None, "the third instance served nothing within 3 s"
        last_second = load.share(registered + 2, registered + 3)
        three_seconds = load.share(registered, registered + 3)
        share = last_second[third] / sum(last_second.values())
        say(
            f"join: registered -> probe passed (pool active/up) "
            f"{watch.up[third] - registered:.3f}s, -> first answer {first - registered:.3f}s; "
            f"share in the 3rd second {share:.0%} ({dict(last_second)}), "
            f"in the first 3 s {three_seconds[third] / sum(three_seconds.values()):.0%}"
        )
        assert share >= 0.2, last_second
    assert load.failures == []
    assert {i for _, i in load.served} == {EAST_A, EAST_B, third}
    say(f"join: {len(load.served)} requests, {len(load.failures)} failed")


def test_sigterm_deregisters_then_drains_and_no_request_fails(
    discovery: DiscoveryStack,
) -> None:
    pool = discovery.pool()
    assert len(pool) == 3, pool
    third = next(i for i in pool if i not in (EAST_A, EAST_B))
    with PoolWatch(discovery.stack.admin) as watch, discovery.load() as load:
        asked = time.monotonic()
        lines = discovery.scale(2)  # the supervisor SIGTERMs the newest instance
        assert f"stopped {third} (deregistered, drained)" in lines, lines
        done = time.monotonic()
        time.sleep(0.5)
    leaving = discovery.logged_at(third, "discovery: leaving")
    deregistered = discovery.logged_at(third, "discovery: deregistered")
    left, in_flight = discovery.gateway_left(third)
    # Deregistered first: out of the gateway's pool while it still served (its drain
    # delay of 1 s), its requests in flight answered, nothing sent after.
    assert leaving <= deregistered
    last_answer = max(t for t, i in load.served if i == third)
    say(
        f"SIGTERM: leaving -> deregistered {deregistered - leaving:.3f}s, "
        f"-> out of the gateway's pool {left - leaving:.3f}s ({in_flight} requests in "
        f"flight there, /cluster showed it gone at {watch.gone[third] - leaving:.3f}s), "
        f"its last answer {last_answer - leaving:+.3f}s, process gone "
        f"{done - leaving:.3f}s (scale asked at {asked - leaving:+.3f}s); "
        f"{len(load.served)} requests, {len(load.failures)} failed"
    )
    assert left - leaving < 1.0  # the drain delay: out before the listener closes
    assert load.failures == []
    assert discovery.pool() == {EAST_A: "active/up", EAST_B: "active/up"}


def test_kill_9_fails_no_get_and_leaves_cluster_within_the_lease_ttl(
    discovery: DiscoveryStack,
) -> None:
    # The supervisor restarts a crashed instance under the same id (re-registering the
    # same key, so it would never leave): it is paused while the lease runs out.
    supervisor = int((discovery.stack.var_dir / "run" / "edgectl.pid").read_text())
    victim = discovery.stack.pid(EAST_B)
    with PoolWatch(discovery.stack.admin) as watch, discovery.load() as load:
        os.kill(supervisor, signal.SIGSTOP)
        try:
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            wait_for(lambda: EAST_B in watch.gone, TTL + 5, "the killed instance leaves")
            left = watch.gone[EAST_B] - killed
            served = load.share(killed)
        finally:
            os.kill(supervisor, signal.SIGCONT)
        back = wait_for(
            lambda: discovery.pool().get(EAST_B) == "active/up", 60, "restarted and back"
        )
    say(
        f"kill -9: out of /cluster after {left:.2f}s (lease TTL {TTL}s); after the kill "
        f"{sum(served.values())} requests ({dict(served)}), {len(load.failures)} failed; "
        f"restarted by the supervisor and back in the pool {back:.1f}s after it resumed"
    )
    assert load.failures == []
    assert left <= TTL + 1
    assert served[EAST_A] > 0


def test_etcd_stopped_30s_keeps_pools_shows_stale_and_resyncs(
    discovery: DiscoveryStack,
) -> None:
    both = {EAST_A: "active/up", EAST_B: "active/up"}
    wait_for(lambda: discovery.pool() == both, 30, "both east instances up")
    revision = discovery.cluster()["discovery"]["regions"]["east"]["revision"]
    scaled: list[list[str]] = []
    with PoolWatch(discovery.stack.admin) as watch, discovery.load() as load:
        discovery.etcd.stop()
        stopped = time.monotonic()
        try:
            stale = wait_for(
                lambda: discovery.cluster()["discovery"]["stale"] is True, 10, "stale shown"
            )
            status = discovery.cluster()["discovery"]
            assert status["regions"]["east"]["stale"] is True
            assert discovery.metric("edge_gateway_discovery_stale") == 1
            # An instance started while etcd is away: it cannot register yet.
            scaler = threading.Thread(target=lambda: scaled.append(discovery.scale(3)))
            scaler.start()
            time.sleep(max(0.0, stopped + OUTAGE - time.monotonic()))
            scaler.join(60)
            assert scaled, "edgectl scale did not return while etcd was away"
            joiner = next(line.split()[1] for line in scaled[0] if line.startswith("started"))
            # The last known pools all along: nobody left, the joiner is not known yet.
            assert discovery.pool() == both
            assert not watch.gone
            stale_for = discovery.cluster()["discovery"]["sources"]["etcd:/edge/services"][
                "stale_for"
            ]
            during = load.share(stopped)
        finally:
            discovery.etcd.start()
        back = time.monotonic()
        fresh = wait_for(
            lambda: discovery.cluster()["discovery"]["stale"] is False, 30, "fresh again"
        )
        wait_for(lambda: joiner in watch.up, 30, "the instance started during the outage")
        resync = watch.up[joiner] - back
        assert discovery.metric("edge_gateway_discovery_stale") == 0
        time.sleep(0.5)
    say(
        f"etcd outage: stopped -> stale {stale:.2f}s; {time.monotonic() - stopped:.1f}s "
        f"in all, stale_for {stale_for:.1f}s at 30 s; during it {sum(during.values())} "
        f"requests ({dict(during)}), {len(load.failures)} failed; etcd back (started and "
        f"answering) -> fresh {fresh:.2f}s, -> the instance started meanwhile active/up "
        f"{resync:.2f}s"
    )
    assert load.failures == []
    assert discovery.cluster()["discovery"]["regions"]["east"]["revision"] > revision
    assert discovery.pool() == {**both, joiner: "active/up"}
    discovery.scale(2)


def test_two_gateways_list_each_other_and_a_region_added_at_runtime_is_routable_in_2s(
    discovery: DiscoveryStack,
) -> None:
    """A second gateway node (the stack's own gateway spec on ports of its own, its
    default region ``south``, which nothing serves yet) and an sv-user instance of region
    ``south`` registered under ``/south`` (the stack's east spec in another region, as
    edgectl scale makes copies): south is created through sv-region's admin API."""
    specs = {
        s.name: s
        for s in process_specs(
            load_registry(ROOT / "deploy/services.toml"),
            load_topology(discovery.topology),
            discovery.topology,
            discovery.stack.var_dir,
        )
    }
    spec = specs["gateway-api"]
    public, admin = free_port(), free_port()
    gateway = replace(
        spec,
        name="gateway-api-2",
        env={
            **spec.env,
            "GATEWAY_PORT": str(public),
            "GATEWAY_ADMIN_PORT": str(admin),
            "GATEWAY_INSTANCE_ID": "gateway-api-2",
            "GATEWAY_DEFAULT_REGION": "south",
        },
    )
    port = free_port()
    south_id = f"sv-user-south-{port}"
    template = copy_spec(specs[EAST_A], port)
    south = replace(
        template,
        name=south_id,
        env={
            **template.env,
            "SV_USER_REGION": "south",
            "SV_USER_INSTANCE_ID": south_id,
            "EDGE_DISCOVERY_PREFIX": "/south",
        },
    )
    procs = [discovery.spawn(south), discovery.spawn(gateway)]
    admin_url = f"http://127.0.0.1:{admin}"
    names = ["gateway-api-1", "gateway-api-2"]

    def listed(url: str) -> list[str]:
        return sorted(str(g["instance"]) for g in discovery.cluster(url)["gateways"])

    try:
        started = time.monotonic()
        for url in (discovery.stack.admin, admin_url):
            wait_for(lambda url=url: listed(url) == names, 90, f"{url} lists both gateways")  # type: ignore[misc]
        both = time.monotonic() - started
        selves = {g["instance"]: g["self"] for g in discovery.cluster(admin_url)["gateways"]}
        assert selves == {"gateway-api-1": False, "gateway-api-2": True}
        # Through the second node: a signed-in east user goes east.
        resp = httpx.get(f"http://127.0.0.1:{public}{LIST}", headers=discovery.headers)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-edge-instance"] in (EAST_A, EAST_B)

        # 6. South: nothing serves it (an anonymous caller's region, on the second node)
        #    until sv-region says where its instances are found.
        wait_for(lambda: discovery.registered(f"/south/sv-user/south/{south_id}"), 90, "south")
        anonymous = f"http://127.0.0.1:{public}{ABOUT}"
        assert httpx.get(anonymous, timeout=5).status_code == 503
        created = httpx.put(
            discovery.stack.public + "/api/v1/regions/south",
            json={"discovery": "etcd:/south", "weight": 0},
            headers=discovery.headers,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        routable = wait_for(
            lambda: httpx.get(anonymous, timeout=2).headers.get("x-edge-instance") == south_id,
            2.0,
            "south routable through the second gateway",
        )
        # The first gateway reads the region list on its own (every second without a
        # shared backend): it follows too, on its own clock.
        wait_for(
            lambda: (
                discovery.cluster()["discovery"]["regions"].get("south", {}).get("source")
                == "etcd:/south"
            ),
            10,
            "the first gateway lists south from etcd:/south",
        )
        assert east_pool(discovery.cluster()) == {EAST_A: "active/up", EAST_B: "active/up"}

        # South on a static list instead: sv-region's ``endpoints`` are its pool (the
        # topology file has no south), and without them it has none.
        def put_south(body: dict[str, object]) -> None:
            resp = httpx.put(
                discovery.stack.public + "/api/v1/regions/south",
                json={"weight": 0, **body},
                headers=discovery.headers,
                timeout=10,
            )
            assert resp.status_code == 200, resp.text

        def south_pool() -> dict[str, str]:
            for pool in discovery.cluster(admin_url)["services"]:
                if pool["service"] == "sv-user" and pool["region"] == "south":
                    return {i["id"]: f"{i['state']}/{i['health']}" for i in pool["instances"]}
            return {}

        # The same process (x-edge-instance is the service's own id), now the gateway's
        # instance for the URL sv-region gives.
        static_id = f"sv-user-south-127.0.0.1-{port}"
        put_south({"discovery": "static", "endpoints": {"sv-user": [f"http://127.0.0.1:{port}"]}})
        to_static = wait_for(
            lambda: south_pool() == {static_id: "active/up"},
            2.0,
            "south's pool is the endpoint sv-region lists",
        )
        resp = httpx.get(anonymous, timeout=5)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-edge-instance"] == south_id
        assert discovery.cluster(admin_url)["discovery"]["regions"]["south"]["source"] == "static"
        put_south({"discovery": "static"})
        wait_for(lambda: httpx.get(anonymous, timeout=2).status_code == 503, 2.0, "south gone")

        procs[1].send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        left = wait_for(
            lambda: listed(discovery.stack.admin) == names[:1], 10, "the second one leaves"
        )
        say(
            f"two gateways: both listed by both {both:.1f}s after the second started "
            f"(its start-up included); SIGTERM -> gone from the first's list {left:.2f}s; "
            f"region south created (201) -> routable through the second {routable:.3f}s; "
            f"moved to static endpoints -> the gateway's pool {to_static:.3f}s"
        )
        assert procs[1].wait(20) == 0
        assert time.monotonic() - stopping < 20
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
