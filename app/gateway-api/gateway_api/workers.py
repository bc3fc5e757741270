"""Several gateway worker processes on one public port, and what they share.

``GATEWAY_WORKERS=N`` makes the first process (worker 0, which also serves the admin
listener) start N-1 more; every worker binds the public port with ``SO_REUSEPORT``
and the kernel spreads connections over them. What each kind of state does:

- revocations, region directory, policy and rate counters go through the backend:
  with Redis (``EDGE_REDIS_URL``) every worker reads and writes the same keys and
  gets the same pub/sub events. With the in-process ``memory://`` stand-in there is
  nothing to share between processes, so each worker polls the owning service
  itself (revocations, directory) and counters are per worker; use Redis whenever
  more than one worker serves traffic and limits must be exact;
- health: each worker runs its own active checker (N probes per interval per
  instance, cheap) and its own passive breakers, so an instance is ejected by every
  worker within the same interval;
- counters for ``/admin/cluster``: every worker writes a snapshot of its view to
  ``var/run/gateway-<port>/worker-<n>.json`` each second and the admin listener
  adds them up (workers always share a machine, so files are enough);
- traffic per tenant and app for ``/cluster``: the same snapshot carries what the
  worker's statistics shipper has counted (:mod:`gateway_api.statship`);
- traffic metrics for ``/metrics``: every other worker answers its counters, as they
  are at that instant, on a Unix socket (``var/run/gateway-<port>/metrics-<n>.sock``,
  :class:`MetricsEndpoint`); the admin listener asks each of them at scrape time
  (:func:`fetch_worker_metrics`) and adds them to its own, so one scrape counts every
  request every worker has answered (doc/services/gateway-api.md, "Metrics").
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from edgelib.tasks import cancel

if TYPE_CHECKING:
    from gateway_api.config import Settings
    from gateway_api.gateway import Gateway

logger = logging.getLogger("gateway.workers")

SNAPSHOT_INTERVAL = 1.0
#: How long the admin listener waits for a worker's metrics at scrape time.
METRICS_TIMEOUT = 1.0
#: Linux's limit on a Unix socket's path (108 bytes with the final NUL), with room.
_SOCKET_PATH_MAX = 100
#: A breaker's state as the ``edge_gateway_breaker_state`` gauge gives it.
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
#: A snapshot older than this belongs to a worker that is gone.
SNAPSHOT_STALE = 5.0


def rss_bytes() -> int:
    """This process's resident set size (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def stats_dir(settings: Settings) -> Path:
    return settings.var_dir / "run" / f"gateway-{settings.port}"


def metrics_socket(settings: Settings, index: int) -> Path:
    """Where worker ``index`` answers its metrics: under the var directory, or (when that
    path is too long for a Unix socket) in a private directory under the temp dir."""
    path = stats_dir(settings) / f"metrics-{index}.sock"
    if len(str(path)) <= _SOCKET_PATH_MAX:
        return path
    tag = hashlib.sha256(str(stats_dir(settings).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"edge-gateway-{tag}" / f"metrics-{index}.sock"


def worker_metrics(gateway: Gateway, index: int) -> dict[str, Any]:
    """This worker's counters (:meth:`GatewayMetrics.snapshot`) and the state it sees:
    instance health and breakers, the route table, the policy version."""
    snapshot = gateway.metrics.snapshot()
    snapshot["worker"] = index
    snapshot["instances"] = [
        [pool.label, i.spec.id, 1 if i.healthy else 0, BREAKER_STATES.get(i.breaker.state, 2)]
        for pool in gateway.upstreams.pools.values()
        for i in pool.instances
    ]
    snapshot["pools"] = [
        [pool.label, len(pool.instances), len(pool.draining)]
        for pool in gateway.upstreams.pools.values()
    ]
    discovery = gateway.egress.discovery
    rows = discovery.metrics() if discovery is not None else []
    if not rows:
        # No source followed (every region static): the topology file, read once at
        # start, never stale, never changing; the dashboard's discovery panels say so
        # instead of showing nothing.
        members = sum(len(pool.instances) for pool in gateway.upstreams.pools.values())
        rows = [["static", 0, 0.0, members, 1, 0, 0, 0]]
    snapshot["discovery"] = rows
    table = gateway.routing.table
    release = 0
    kind = "file"
    if table.source.startswith("sv-config:"):
        kind = "sv-config"
        with contextlib.suppress(ValueError):
            release = int(table.source.rpartition("#")[2])
    snapshot["route_table"] = {
        "source": kind,
        "version": table.version,
        "release": release,
        "routes": len(table.routes),
    }
    authz = gateway.security.authz
    snapshot["policy_version"] = authz.version if authz is not None else None
    return snapshot


class MetricsEndpoint:
    """A worker other than 0: answers :func:`worker_metrics` to each connection on its
    Unix socket (the connection is the request; the answer is one JSON document)."""

    def __init__(self, settings: Settings, gateway: Gateway, index: int) -> None:
        self.gateway = gateway
        self.index = index
        self.path = metrics_socket(settings, index)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a worker that was killed
        self._server = await asyncio.start_unix_server(self._answer, path=str(self.path))
        os.chmod(self.path, 0o600)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            # Taken synchronously: no request is counted half-way through a snapshot.
            writer.write(orjson.dumps(worker_metrics(self.gateway, self.index)))
            await writer.drain()
        except OSError:
            return  # the scraping worker went away mid-answer: it counts this worker missing
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(OSError):
            self.path.unlink()


async def _fetch_one(path: Path) -> dict[str, Any] | None:
    try:
        async with asyncio.timeout(METRICS_TIMEOUT):
            reader, writer = await asyncio.open_unix_connection(str(path))
            try:
                data = await reader.read()
            finally:
                writer.close()
        doc = orjson.loads(data)
    except (OSError, TimeoutError, orjson.JSONDecodeError):
        return None  # a worker restarting, or gone: this scrape goes without it
    return doc if isinstance(doc, dict) else None


async def fetch_worker_metrics(settings: Settings, workers: int) -> list[dict[str, Any] | None]:
    """Workers 1..``workers``-1's metrics, asked together; None for one that did not answer."""
    paths = [metrics_socket(settings, index) for index in range(1, workers)]
    return list(await asyncio.gather(*(_fetch_one(p) for p in paths)))


class WorkerStats:
    """Writes this worker's view of the upstreams for the admin listener to add up."""

    def __init__(self, settings: Settings, gateway: Gateway, index: int) -> None:
        self.gateway = gateway
        self.index = index
        self.path = stats_dir(settings) / f"worker-{index}.json"
        self.started = time.time()
        self._task: asyncio.Task[None] | None = None

    def snapshot(self) -> dict[str, Any]:
        shipper = self.gateway.stats_shipper
        return {
            "stats": shipper.snapshot() if shipper is not None else None,
            "worker": self.index,
            "pid": os.getpid(),
            "started": self.started,
            "written": time.time(),
            "rss_bytes": rss_bytes(),
            "instances": {
                i.spec.id: {
                    "requests": i.served,
                    "errors": i.errors,
                    "in_flight": i.in_flight,
                    "health": "up" if i.healthy else "down",
                    "circuit": i.breaker.state,
                }
                for i in self.gateway.upstreams.all_instances()
            },
        }

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(self.snapshot()))
        tmp.replace(self.path)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-worker-stats")

    async def _run(self) -> None:
        while True:
            try:
                self.write()
            except OSError as exc:
                logger.warning("cannot write worker stats", extra={"error": str(exc)})
            await asyncio.sleep(SNAPSHOT_INTERVAL)

    async def stop(self) -> None:
        await cancel(self._task)
        with contextlib.suppress(OSError):
            self.path.unlink()


def read_snapshots(settings: Settings) -> list[dict[str, Any]]:
    """The live workers' latest snapshots, by worker index."""
    now = time.time()
    found = []
    for path in sorted(stats_dir(settings).glob("worker-*.json")):
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if now - float(doc.get("written", 0)) <= SNAPSHOT_STALE:
            found.append(doc)
    return sorted(found, key=lambda d: int(d.get("worker", 0)))


def with_workers(gateway: Gateway, cluster: dict[str, Any]) -> dict[str, Any]:
    """``cluster`` with every worker's counters added up, and a ``workers`` list.

    Health and circuit state stay this (the admin) worker's view; ``down_in_workers``
    counts the workers that currently see an instance down.
    """
    snapshots = read_snapshots(gateway.settings)
    others = [s for s in snapshots if s.get("pid") != os.getpid()]
    for pool in cluster.get("services", []):
        for inst in pool["instances"]:
            down = 0 if inst["health"] == "up" else 1
            for snap in others:
                seen = snap["instances"].get(inst["id"])
                if seen is None:
                    continue
                inst["requests"] += seen["requests"]
                inst["errors"] += seen["errors"]
                inst["in_flight"] += seen["in_flight"]
                down += seen["health"] != "up"
            inst["down_in_workers"] = down
    cluster["traffic"] = traffic_by_tenant(snapshots)
    cluster["workers"] = [
        {
            "worker": s["worker"],
            "pid": s["pid"],
            "rss_mb": round(s["rss_bytes"] / 2**20, 1),
            "uptime_s": round(time.time() - s["started"], 1),
            "requests": sum(i["requests"] for i in s["instances"].values()),
        }
        for s in snapshots
    ]
    return cluster


def traffic_by_tenant(snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests, 4xx and 5xx per (tenant, app) since each worker started, all workers
    added up (``app`` is empty for users), busiest first."""
    totals: dict[tuple[str, str], list[int]] = {}
    for snap in snapshots:
        for tenant, app, requests, client, server in (snap.get("stats") or {}).get("traffic", []):
            seen = totals.setdefault((tenant, app), [0, 0, 0])
            seen[0] += requests
            seen[1] += client
            seen[2] += server
    return [
        {"tenant": t, "app": a, "requests": n, "errors_4xx": c, "errors_5xx": e}
        for (t, a), (n, c, e) in sorted(totals.items(), key=lambda kv: (-kv[1][0], kv[0]))
    ]


class WorkerPool:
    """Worker 0's children: started at boot, restarted if they die, stopped with it."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def _spawn(self, index: int) -> None:
        env = dict(os.environ, GATEWAY_WORKER_INDEX=str(index))
        self.procs[index] = subprocess.Popen([sys.executable, "-m", "gateway_api"], env=env)
        logger.info("worker started", extra={"worker": index, "pid": self.procs[index].pid})

    def start(self) -> None:
        for index in range(1, self.count + 1):
            self._spawn(index)
        self._task = asyncio.create_task(self._watch(), name="gateway-workers")

    async def _watch(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.5)
            for index, proc in list(self.procs.items()):
                if proc.poll() is not None and not self._stopping:
                    logger.warning(
                        "worker exited; restarting",
                        extra={"worker": index, "code": proc.returncode},
                    )
                    self._spawn(index)

    async def stop(self, grace: float = 10.0) -> None:
        self._stopping = True
        await cancel(self._task)
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            # subprocess.Popen: no awaitable exit (asyncio's child watchers are not used).
            while proc.poll() is None:
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def watch_parent(stop: asyncio.Event) -> None:
    """A child worker stops when worker 0 is gone (even if it was killed)."""
    parent = os.getppid()

    async def watch() -> None:
        # No event tells a process its parent died (prctl's PDEATHSIG is Linux-only).
        while True:
            if os.getppid() != parent:
                break
            await asyncio.sleep(0.5)
        logger.warning("worker 0 is gone; stopping")
        stop.set()

    asyncio.get_running_loop().create_task(watch(), name="gateway-parent-watch")
