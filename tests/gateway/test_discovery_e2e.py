"""The gateway follows etcd live: a real etcd, real gateway processes, real services.

Each service is ``tests.libs.discovery.slow_service`` (the platform's app factory and
runner, ``EDGE_DISCOVERY=etcd``): it registers once serving, deregisters and drains on
SIGTERM, and a ``kill -9`` leaves its key to the lease (5 s here). The gateway is
``python -m gateway_api`` with ``EDGE_DISCOVERY=etcd``: it registers itself and its pools
follow ``etcd:/edge/services``. Load is six client threads of GETs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from edgectl.discovery import gateway_lines
from tests.helpers import wait_for
from tests.libs.discovery.etcd_server import EtcdServer
from tests.worker import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
TTL = 5
#: Seconds a process may take to start (a Python service on a busy 2-core machine).
START = float(os.environ.get("EDGE_E2E_READY_TIMEOUT", "120"))
ROUTES = """
[[routes]]
path = "/slow"
service = "sv-slow"
scope = "regional"
access = "public"
retries = 2
connect_timeout = 0.5
"""


class Processes:
    """Processes this test started, stopped by PID at the end."""

    def __init__(self, tmp: Path, etcd: EtcdServer) -> None:
        self.tmp = tmp
        self.etcd = etcd
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "GATEWAY_"))}
        env.update(
            EDGE_DISCOVERY="etcd",
            EDGE_ETCD_URL=self.etcd.url,
            EDGE_DISCOVERY_TTL=str(TTL),
            EDGE_DISCOVERY_DRAIN_DELAY="1.0",
            EDGE_LOG_URL="",
            EDGE_VAR_DIR=str(self.tmp / "var"),
            PYTHONPATH=str(ROOT),
            **extra,
        )
        return env

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.procs.append(proc)
        return proc

    def service(self, port: int) -> subprocess.Popen[bytes]:
        env = self.env(SLOW_PORT=str(port), SLOW_REGION="east")
        return self.spawn(f"slow-{port}", ["-m", "tests.libs.discovery.slow_service"], env)

    def gateway(self, public: int, admin: int, first_port: int, workers: int = 1) -> Gateway:
        topology = self.tmp / f"topology-{public}.toml"
        # The topology names sv-slow (routes may only name known services) with an
        # instance etcd does not know: once etcd is listed, it is gone from the pool.
        topology.write_text(
            '[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n'
            f'[[services]]\nname = "sv-slow"\nregion = "east"\n'
            f"instances = [{{ port = {first_port} }}]\n"
            f'[[services]]\nname = "auth-jwt"\ninstances = [{{ port = {first_port} }}]\n'
            f'[[services]]\nname = "auth-rbac"\ninstances = [{{ port = {first_port} }}]\n'
        )
        routes = self.tmp / "routes.toml"
        routes.write_text(ROUTES)
        env = self.env(
            GATEWAY_PORT=str(public),
            GATEWAY_ADMIN_PORT=str(admin),
            GATEWAY_TOPOLOGY=str(topology),
            GATEWAY_ROUTES=str(routes),
            GATEWAY_WORKERS=str(workers),
            GATEWAY_EXPOSE_INSTANCE="true",
            GATEWAY_HEALTH_INTERVAL="0.5",
            # A starved service (2 shared cores) may take over a second to answer /healthz:
            # that is not what these tests are about.
            GATEWAY_HEALTH_TIMEOUT="3",
            GATEWAY_UNHEALTHY_THRESHOLD="3",
        )
        proc = self.spawn(f"gateway-{public}", ["-m", "gateway_api"], env)
        return Gateway(proc, public, admin, self.tmp / "var" / "run" / f"gateway-{public}")

    def registered_at(self, port: int) -> float:
        """When the service at ``port`` logged its registration (Unix time)."""
        # Log lines reach the file within edgelib.logs.FLUSH_SECONDS (written in batches).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for line in (self.tmp / f"slow-{port}.log").read_text().splitlines():
                if "discovery: registered" in line:
                    return datetime.fromisoformat(orjson.loads(line)["ts"]).timestamp()
            time.sleep(0.1)
        raise AssertionError(f"the service at {port} never logged its registration")

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)


@dataclass
class Gateway:
    proc: subprocess.Popen[bytes]
    public: int
    admin: int
    stats: Path

    def cluster(self) -> dict[str, Any]:
        return httpx.get(f"http://127.0.0.1:{self.admin}/cluster", timeout=2).json()  # type: ignore[no-any-return]

    def pool(self) -> dict[str, str]:
        """sv-slow's instances in /cluster: id -> state."""
        for pool in self.cluster()["services"]:
            if pool["service"] == "sv-slow":
                return {i["id"]: f"{i['state']}/{i['health']}" for i in pool["instances"]}
        return {}

    def worker_views(self) -> list[set[str]]:
        """The instance ids every worker process sees (their stats snapshots)."""
        views = []
        for path in sorted(self.stats.glob("worker-*.json")):
            views.append(set(orjson.loads(path.read_bytes())["instances"]))
        return views


@dataclass
class Load:
    """Six threads of GETs through the gateway; every answer and failure recorded."""

    url: str
    threads: int = 6
    served: list[tuple[float, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._workers.append(thread)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    resp = client.get(self.url, params={"seconds": "0.05"})
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if resp.status_code != 200:
                    self.failures.append(f"{resp.status_code} {resp.text[:200]}")
                else:
                    self.served.append((time.monotonic(), resp.headers["x-edge-instance"]))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(15)

    def first_from(self, instance: str, after: float) -> float | None:
        return next((t for t, i in list(self.served) if i == instance and t >= after), None)

    def share(self, since: float) -> Counter[str]:
        return Counter(i for t, i in list(self.served) if t >= since)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Processes]:
    etcd = EtcdServer(tmp_path / "etcd")
    etcd.start()
    procs = Processes(tmp_path, etcd)
    try:
        yield procs
    finally:
        procs.stop_all()
        etcd.stop()


def registered(etcd: EtcdServer, instance: str) -> bool:
    key = f"/edge/services/sv-slow/east/{instance}"
    import base64

    body = orjson.dumps({"key": base64.b64encode(key.encode()).decode()})
    resp = httpx.post(f"{etcd.url}/v3/kv/range", content=body, timeout=2).json()
    return bool(resp.get("kvs"))


def start_gateway(stack: Processes, first_port: int, workers: int) -> Gateway:
    gw = stack.gateway(free_port(), free_port(), first_port, workers)
    wait_for(lambda: len(gw.worker_views()) == workers, START, "the gateway's workers")
    return gw


def test_join_leave_and_crash_under_load_with_two_workers(stack: Processes) -> None:
    ports = [free_port() for _ in range(3)]
    ids = [f"sv-slow-east-{p}" for p in ports]
    stack.service(ports[0])
    gw = start_gateway(stack, ports[0], workers=2)
    wait_for(lambda: registered(stack.etcd, ids[0]), START, "the first service registered")
    wait_for(lambda: gw.pool() == {ids[0]: "active/up"}, START, "the pool is etcd's")
    cluster = gw.cluster()
    assert cluster["discovery"]["stale"] is False
    assert cluster["discovery"]["regions"]["east"]["source"] == "etcd:/edge/services"
    assert [g["instance"] for g in cluster["gateways"]] == [f"gateway-api-{gw.public}"]
    load = Load(f"http://127.0.0.1:{gw.public}/slow")
    load.start()
    try:
        wait_for(lambda: len(load.served) > 50, 30, "load flowing")

        # 1. Join: traffic within 1 s of registering; 20%+ of requests within 3 s.
        stack.service(ports[1])
        wait_for(lambda: registered(stack.etcd, ids[1]), START, "the second service registered")
        at_registration = time.monotonic()
        wait_for(lambda: load.first_from(ids[1], 0) is not None, 5, "traffic to the joiner")
        first = load.first_from(ids[1], 0)
        assert first is not None
        # From the moment etcd acknowledged the registration (the service logs it, same
        # clock) to the joiner's first answer received by a client.
        registered_at = stack.registered_at(ports[1])
        wall_first = time.time() - (time.monotonic() - first)
        join_to_traffic = wall_first - registered_at
        print(f"join to traffic: {join_to_traffic:.3f}s")  # noqa: T201 (the doc's number)
        assert 0 < join_to_traffic < 1.0
        time.sleep(max(0.0, at_registration + 3 - time.monotonic()))
        window = load.share(time.monotonic() - 1.0)
        assert window[ids[1]] / sum(window.values()) >= 0.2, window
        # Every worker follows etcd.
        wait_for(lambda: all(ids[1] in view for view in gw.worker_views()), 3, "every worker")

        # 2. SIGTERM: deregistered, drained; a slow request in flight completes.
        with httpx.Client(timeout=10) as client:
            slow: list[int] = []
            threads = [
                threading.Thread(
                    target=lambda: slow.append(
                        client.get(
                            f"http://127.0.0.1:{gw.public}/slow", params={"seconds": "1.5"}
                        ).status_code
                    )
                )
                for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            time.sleep(0.3)  # the slow requests are in flight on both instances
            stack.procs[0].send_signal(signal.SIGTERM)
            wait_for(lambda: ids[0] not in gw.pool(), 3, "the leaver out of the pool")
            for thread in threads:
                thread.join(10)
            assert slow == [200, 200, 200, 200]
        stack.procs[0].wait(15)
        left_at = time.monotonic()
        time.sleep(0.5)
        assert {i for t, i in list(load.served) if t > left_at} == {ids[1]}

        # 3. kill -9: idempotent requests are retried elsewhere; gone after the lease.
        crasher = stack.service(ports[2])
        wait_for(lambda: gw.pool().get(ids[2]) == "active/up", START, "the third instance")
        up_at = time.monotonic()
        wait_for(lambda: load.first_from(ids[2], up_at) is not None, 5, "its traffic")
        crasher.kill()
        killed_at = time.monotonic()
        gone = wait_for(lambda: ids[2] not in gw.pool(), TTL + 2, "the crashed instance leaves")
        print(f"crash to removal: {gone:.2f}s (TTL {TTL}s)")  # noqa: T201
        # The lease runs out within TTL of the kill (+1 s for etcd's expiry sweep and the
        # watch); a busy shared machine adds its own delay, hence the margin.
        assert gone <= TTL + 3
        assert time.monotonic() - killed_at < TTL + 2
        time.sleep(0.5)
    finally:
        load.stop()
    assert load.failures == []
    assert len(load.served) > 200


def test_etcd_outage_keeps_pools_shows_stale_and_resyncs_and_gateways_see_each_other(
    stack: Processes,
) -> None:
    ports = [free_port() for _ in range(3)]
    ids = [f"sv-slow-east-{p}" for p in ports]
    stack.service(ports[0])
    stack.service(ports[1])
    gw = stack.gateway(free_port(), free_port(), ports[0])
    other = stack.gateway(free_port(), free_port(), ports[0])
    for node in (gw, other):
        wait_for(lambda node=node: len(node.worker_views()) == 1, START, "the gateways")  # type: ignore[misc]
    names = sorted([f"gateway-api-{gw.public}", f"gateway-api-{other.public}"])
    for node in (gw, other):
        wait_for(
            lambda node=node: sorted(g["instance"] for g in node.cluster()["gateways"]) == names,  # type: ignore[misc]
            10,
            "the gateways list each other",
        )
    both = {ids[0]: "active/up", ids[1]: "active/up"}
    wait_for(lambda: gw.pool() == both, START, "both instances in the pool")
    revision = gw.cluster()["discovery"]["regions"]["east"]["revision"]
    load = Load(f"http://127.0.0.1:{gw.public}/slow")
    load.start()
    try:
        wait_for(lambda: len(load.served) > 50, 30, "load flowing")
        stack.etcd.stop()
        stale = wait_for(
            lambda: gw.cluster()["discovery"]["stale"] is True, 5, "/cluster says stale"
        )
        print(f"etcd stop to stale: {stale:.2f}s")  # noqa: T201
        cluster = gw.cluster()
        east = cluster["discovery"]["regions"]["east"]
        assert east["stale"] is True
        assert east["revision"] >= revision
        # edgectl status shows the same.
        lines = gateway_lines(f"http://127.0.0.1:{gw.admin}")
        assert lines[0].endswith("discovery etcd:/edge/services, STALE (last known pools)")
        assert any(ids[0] in line and "active" in line for line in lines)
        time.sleep(6)  # etcd away (longer than the lease TTL)
        assert gw.pool() == both  # the last known pools, no mass removal
        since = time.monotonic() - 3
        assert set(load.share(since)) == set(ids[:2])  # both still serve

        stack.etcd.start()
        fresh = wait_for(
            lambda: gw.cluster()["discovery"]["stale"] is False, 15, "fresh after etcd returns"
        )
        print(f"etcd back to fresh: {fresh:.2f}s")  # noqa: T201
        # A change after the return arrives: the watch is in place again.
        stack.service(ports[2])
        wait_for(lambda: gw.pool().get(ids[2]) == "active/up", START, "a join after the outage")
        assert gw.pool() == {**both, ids[2]: "active/up"}
        assert gw.cluster()["discovery"]["regions"]["east"]["revision"] > revision
    finally:
        load.stop()
    assert load.failures == []
