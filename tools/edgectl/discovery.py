"""edgectl's side of discovery: a local etcd for ``EDGE_DISCOVERY=etcd make up``, and
``edgectl status`` (what is registered, and what the gateway sees)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from edgectl.processes import write_pid
from edgelib.discovery import EtcdClient, EtcdError

logger = logging.getLogger("edgectl")

DEFAULT_ETCD_URL = "http://127.0.0.1:2379"


def discovery_mode() -> str:
    return os.environ.get("EDGE_DISCOVERY", "static").strip().lower() or "static"


def etcd_url() -> str:
    return os.environ.get("EDGE_ETCD_URL") or DEFAULT_ETCD_URL


async def _answers(url: str) -> bool:
    async with EtcdClient(url, timeout=1.0) as client:
        try:
            await client.status(timeout=1.0)
        except EtcdError:
            return False
    return True


@dataclass
class LocalEtcd:
    """The etcd ``make up`` started (``process``), or one that was already there."""

    url: str
    process: subprocess.Popen[bytes] | None = None
    pid_path: Path | None = None

    @classmethod
    def ensure(cls, var_dir: Path, url: str | None = None, timeout: float = 20.0) -> LocalEtcd:
        """Use the etcd at ``url`` if it answers, else start one there (loopback only)."""
        url = url or etcd_url()
        if asyncio.run(_answers(url)):
            logger.info("discovery: using the etcd at %s", url)
            return cls(url)
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
            raise RuntimeError(f"etcd at {url} does not answer (and is not a local address)")
        binary = shutil.which("etcd")
        if binary is None:
            raise RuntimeError(
                "EDGE_DISCOVERY=etcd needs etcd: apt-get install etcd-server "
                "(or point EDGE_ETCD_URL at a running one)"
            )
        data_dir = var_dir / "etcd"
        (var_dir / "log").mkdir(parents=True, exist_ok=True)
        (var_dir / "run").mkdir(parents=True, exist_ok=True)
        peer = f"http://127.0.0.1:{parts.port + 1}"
        client = f"http://127.0.0.1:{parts.port}"
        log = (var_dir / "log" / "etcd.log").open("ab")
        try:
            process = subprocess.Popen(
                [
                    binary,
                    "--name=edge-local",
                    f"--data-dir={data_dir}",
                    f"--listen-client-urls={client}",
                    f"--advertise-client-urls={client}",
                    f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster=edge-local={peer}",
                    "--log-level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches edgectl, which stops it last
            )
        finally:
            log.close()
        pid_path = var_dir / "run" / "etcd.pid"
        write_pid(pid_path, process.pid)
        local = cls(url, process, pid_path)
        deadline = time.monotonic() + timeout
        while not asyncio.run(_answers(url)):
            if process.poll() is not None or time.monotonic() > deadline:
                local.stop()
                raise RuntimeError(f"etcd did not start at {url}: see {var_dir}/log/etcd.log")
            time.sleep(0.1)
        logger.info("discovery: started etcd at %s (pid %d, data %s)", url, process.pid, data_dir)
        return local

    def stop(self) -> None:
        process, self.process = self.process, None
        if self.pid_path is not None:
            self.pid_path.unlink(missing_ok=True)
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


async def registered(url: str, prefix: str) -> list[dict[str, object]]:
    """Every registration under ``prefix``: the member's value, its key and lease TTL left."""
    rows: list[dict[str, object]] = []
    async with EtcdClient(url, timeout=2.0) as client:
        _, kvs = await client.get_prefix(prefix.rstrip("/") + "/")
        for kv in kvs:
            try:
                value = orjson.loads(kv.value)
            except orjson.JSONDecodeError:
                value = {}
            if not isinstance(value, dict):
                value = {}
            ttl = await client.time_to_live(kv.lease) if kv.lease else None
            rows.append({**value, "key": kv.key, "ttl": ttl})
    return rows


def status_lines(url: str, prefix: str) -> tuple[int, list[str]]:
    """``edgectl status``: the registry's members as a table (exit code, lines)."""
    try:
        rows = asyncio.run(registered(url, prefix))
    except EtcdError as exc:
        mode = discovery_mode()
        return (1 if mode == "etcd" else 0), [
            f"discovery: {mode}; etcd at {url} does not answer ({exc})",
        ]
    lines = [f"discovery: etcd at {url}, prefix {prefix}: {len(rows)} registered"]
    fields = ("service", "region", "instance", "url", "weight", "zone", "version")
    table: list[list[str]] = [[*(f.upper() for f in fields), "TTL"]]
    for row in rows:
        cells = ["-" if row.get(name) is None else str(row.get(name)) for name in fields]
        table.append([*cells, "-" if row["ttl"] is None else f"{row['ttl']}s"])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return 0, lines


def gateway_lines(admin_url: str) -> list[str]:
    """``edgectl status``: what the gateway sees (its ``/cluster``), or why not known."""
    try:
        with urllib.request.urlopen(f"{admin_url}/cluster", timeout=2.0) as response:
            cluster = orjson.loads(response.read())
    except (OSError, ValueError) as exc:
        return [f"gateway: {admin_url} does not answer ({exc})"]
    discovery = cluster.get("discovery") or {}
    state = "STALE (last known pools)" if discovery.get("stale") else "current"
    lines = [f"gateway at {admin_url}: discovery {discovery.get('default', 'static')}, {state}"]
    for region, info in sorted((discovery.get("regions") or {}).items()):
        revision = info.get("revision")
        at = "" if revision is None else f", revision {revision}"
        stale = "stale" if info.get("stale") else "current"
        lines.append(f"  region {region}: {info.get('source')} ({stale}{at})")
    nodes = [str(g.get("instance")) for g in cluster.get("gateways") or []]
    if nodes:
        lines.append(f"  gateway nodes: {', '.join(nodes)}")
    table = [["POOL", "INSTANCE", "URL", "STATE", "HEALTH", "IN_FLIGHT"]]
    for pool in cluster.get("services") or []:
        name = f"{pool['service']}/{pool['region'] or '-'}"
        for inst in pool["instances"]:
            table.append(
                [name, inst["id"], inst["url"], inst.get("state", "active"), inst["health"],
                 str(inst["in_flight"])]
            )  # fmt: skip
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return lines
