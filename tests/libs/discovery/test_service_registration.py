"""A real service process with EDGE_DISCOVERY=etcd: it registers once serving; on SIGTERM
it deregisters first, keeps serving through the drain delay, finishes what is in flight,
then stops. With the default (static) it never touches etcd."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from edgelib.discovery import EtcdClient
from tests.libs.discovery.etcd_server import EtcdServer
from tests.libs.discovery.helpers import wait_until
from tests.worker import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def service(etcd: EtcdServer, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {
        **os.environ,
        "SLOW_PORT": str(port),
        "SLOW_REGION": "east",
        "EDGE_VAR_DIR": str(tmp_path / "var"),
        "EDGE_DISCOVERY": "etcd",
        "EDGE_ETCD_URL": etcd.url,
        "EDGE_DISCOVERY_TTL": "5",
        "EDGE_DISCOVERY_DRAIN_DELAY": "1.0",
        "EDGE_ZONE": "zone-b",
        "EDGE_LOG_URL": "",
        "PYTHONPATH": str(ROOT),
    }
    log = (tmp_path / "service.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.libs.discovery.slow_service"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process, port
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    log.close()


async def registered(client: EtcdClient) -> dict[str, dict[str, object]]:
    _, kvs = await client.get_prefix("/edge/services/sv-slow/")
    return {kv.key: orjson.loads(kv.value) for kv in kvs}


async def test_a_service_registers_and_on_sigterm_deregisters_then_drains(
    etcd: EtcdServer, service: tuple[subprocess.Popen[bytes], int]
) -> None:
    process, port = service
    key = f"/edge/services/sv-slow/east/sv-slow-east-{port}"
    async with EtcdClient(etcd.url) as client, httpx.AsyncClient(timeout=15) as http:
        found: dict[str, dict[str, object]] = {}

        async def poll() -> None:
            found.update(await registered(client))

        deadline = time.monotonic() + 60
        while key not in found:
            assert process.poll() is None, "the service exited"
            assert time.monotonic() < deadline, "never registered"
            await poll()
            await asyncio.sleep(0.1)
        value = found[key]
        assert value["url"] == f"http://127.0.0.1:{port}"
        assert value["version"] == "9.9.9"
        assert value["zone"] == "zone-b"
        assert (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200

        in_flight = asyncio.create_task(http.get(f"http://127.0.0.1:{port}/slow?seconds=2.5"))
        await asyncio.sleep(0.3)
        stopped = time.monotonic()
        os.kill(process.pid, signal.SIGTERM)
        gone_after = await wait_until_gone(client, key)
        assert gone_after < 0.7, f"deregistered {gone_after:.2f}s after SIGTERM"
        # Deregistered, but still listening through the drain delay: a request that was
        # routed here just before the watchers heard is still served.
        late = await http.get(f"http://127.0.0.1:{port}/slow?seconds=0")
        assert late.status_code == 200
        # What was in flight completes.
        response = await in_flight
        assert response.status_code == 200
        assert response.json() == {"slept": 2.5}
        await wait_until(lambda: process.poll() is not None, 15, "the process exits")
        print(  # noqa: T201
            f"deregistered {gone_after:.2f}s after SIGTERM, exited after "
            f"{time.monotonic() - stopped:.2f}s"
        )


async def wait_until_gone(client: EtcdClient, key: str) -> float:
    start = time.monotonic()
    while key in await registered(client):
        assert time.monotonic() - start < 5, "not deregistered"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_static_discovery_does_not_register(etcd: EtcdServer, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SLOW_PORT": str(port),
        "EDGE_VAR_DIR": str(tmp_path / "var"),
        "EDGE_ETCD_URL": etcd.url,
        "EDGE_LOG_URL": "",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("EDGE_DISCOVERY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.libs.discovery.slow_service"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(timeout=2) as http:

            async def ready() -> bool:
                try:
                    return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            deadline = time.monotonic() + 60
            while not await ready():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        async with EtcdClient(etcd.url) as client:
            assert await client.get_prefix("/edge/") == (1, [])
        os.kill(process.pid, signal.SIGTERM)
        process.wait(15)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
