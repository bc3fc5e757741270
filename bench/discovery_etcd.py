"""The etcd JSON gateway as discovery uses it: operation latency and watch delay.

Starts its own etcd (Debian's etcd-server) on 127.0.0.1:41379 unless ``--url`` is given,
then measures over aiohttp (edgelib.discovery.EtcdClient):
  * lease grant + put (one registration), keep-alive, range of the prefix;
  * put -> EtcdWatcher join event (what a watching gateway waits for).
Numbers are for doc/decisions.md; run: ``.venv/bin/python bench/discovery_etcd.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time

import orjson

from edgelib.discovery import EtcdClient, EtcdWatcher, Member, member_key


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


async def measure(url: str, n: int) -> None:
    async with EtcdClient(url) as client:
        registrations, keepalives = [], []
        leases = []
        for i in range(n):
            m = Member("bench", "east", f"i{i}", f"http://10.0.0.{i % 250}:7000")
            start = time.perf_counter()
            lease = await client.grant(10)
            await client.put(member_key("/bench", m), b'{"x":1}', lease=lease)
            registrations.append(time.perf_counter() - start)
            leases.append(lease)
        for lease in leases:
            start = time.perf_counter()
            await client.keepalive(lease)
            keepalives.append(time.perf_counter() - start)
        ranges = []
        for _ in range(50):
            start = time.perf_counter()
            await client.get_prefix("/bench/")
            ranges.append(time.perf_counter() - start)
        delays = []
        async with EtcdWatcher(url, prefix="/edge/services") as watcher:
            await watcher.wait_synced(5)
            async with watcher.membership.subscribe() as events:
                for i in range(n):
                    m = Member("sv-user", "east", f"w{i}", "http://10.0.0.1:7000")
                    start = time.perf_counter()
                    await client.put(member_key("/edge/services", m), orjson.dumps(m.to_json()))
                    await events.get()
                    delays.append(time.perf_counter() - start)
        for lease in leases:
            await client.revoke(lease)
    for name, values in (
        ("registration (grant + put)", registrations),
        ("keep-alive", keepalives),
        (f"range of {n} keys", ranges),
        ("put -> watcher event", delays),
    ):
        print(  # noqa: T201
            f"{name:28s} median {statistics.median(values) * 1000:6.2f} ms"
            f"  p95 {pct(values, 0.95):6.2f} ms  (n={len(values)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args()
    process = None
    url = args.url
    data = tempfile.mkdtemp(prefix="bench-etcd-")
    if url is None:
        url = "http://127.0.0.1:41379"
        process = subprocess.Popen(
            [
                "etcd",
                f"--data-dir={data}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                "--listen-peer-urls=http://127.0.0.1:41380",
                "--initial-advertise-peer-urls=http://127.0.0.1:41380",
                "--initial-cluster=default=http://127.0.0.1:41380",
                "--log-level=error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(2)
    try:
        asyncio.run(measure(url, args.n))
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
