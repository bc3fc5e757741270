"""A region added at runtime through sv-region is routable within 2 s (issue 18, item 4).

Real processes, as few as it takes: an etcd 3.4, sv-region (its own app and runner, with
SQLite and the test Redis for its change events), one gateway (``python -m gateway_api``)
and one service registering in etcd under the new region's own prefix. The gateway's
default region is ``south``, which nothing serves at first: a public regional route
answers 503 until sv-region says where south's instances are found.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgelib.identity import Identity
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from tests.gateway.test_discovery_e2e import ROUTES, START, Processes
from tests.helpers import wait_for
from tests.libs.discovery.etcd_server import EtcdServer
from tests.libs.discovery.region_service import ADMIN_ID
from tests.worker import free_port, redis_url

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ADMIN = Identity(ADMIN_ID, "admin", "east", "s-1", "web")
AS_GATEWAY = ServiceSigner("gateway-api", DEV_SERVICE_SECRET).to("sv-region")


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


def env(stack: Processes, **extra: str) -> dict[str, str]:
    return {**stack.env(), **extra}


def put_region(port: int, name: str, body: dict[str, object]) -> httpx.Response:
    path = f"/api/v1/regions/{name}"
    content = json.dumps(body).encode()
    headers = AS_GATEWAY.sign("PUT", path, content, identity=ADMIN.encode())
    headers["content-type"] = "application/json"
    return httpx.put(f"http://127.0.0.1:{port}{path}", content=content, headers=headers, timeout=5)


def test_a_region_created_in_sv_region_is_routable_within_2s_and_follows_its_source(
    stack: Processes, tmp_path: Path
) -> None:
    backend = redis_url(os.environ.get("EDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    region_port, public, admin, slow_port = free_port(), free_port(), free_port(), free_port()
    stack.spawn(
        "sv-region",
        ["-m", "tests.libs.discovery.region_service"],
        env(
            stack,
            EDGE_DISCOVERY="static",
            EDGE_REDIS_URL=backend,
            SV_REGION_PORT=str(region_port),
            SV_REGION_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'region.db'}",
        ),
    )
    # The new region's instance registers under its own prefix, which nothing watches yet.
    stack.spawn(
        "slow",
        ["-m", "tests.libs.discovery.slow_service"],
        env(stack, SLOW_PORT=str(slow_port), SLOW_REGION="south", EDGE_DISCOVERY_PREFIX="/south"),
    )
    topology = tmp_path / "topology.toml"
    topology.write_text(
        '[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n'
        f'[[services]]\nname = "sv-slow"\nregion = "east"\ninstances = [{{ port = {slow_port} }}]\n'
        f'[[services]]\nname = "sv-region"\ninstances = [{{ port = {region_port} }}]\n'
        f'[[services]]\nname = "auth-jwt"\ninstances = [{{ port = {region_port} }}]\n'
        f'[[services]]\nname = "auth-rbac"\ninstances = [{{ port = {region_port} }}]\n'
    )
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES)
    stack.spawn(
        "gateway",
        ["-m", "gateway_api"],
        env(
            stack,
            EDGE_DISCOVERY="static",  # the default stays the topology: only south moves
            EDGE_REDIS_URL=backend,
            GATEWAY_PORT=str(public),
            GATEWAY_ADMIN_PORT=str(admin),
            GATEWAY_TOPOLOGY=str(topology),
            GATEWAY_ROUTES=str(routes),
            GATEWAY_DEFAULT_REGION="south",
            GATEWAY_EXPOSE_INSTANCE="true",
            GATEWAY_HEALTH_TIMEOUT="3",
        ),
    )
    slow_url = f"http://127.0.0.1:{public}/slow"

    def cluster() -> dict[str, object]:
        return httpx.get(f"http://127.0.0.1:{admin}/cluster", timeout=2).json()  # type: ignore[no-any-return]

    def directory_reads() -> int:
        return cluster()["discovery"]["directory"]["reads"]  # type: ignore[index,no-any-return]

    wait_for(lambda: directory_reads() >= 1, START, "the gateway read sv-region's regions")
    wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{slow_port}/healthz", timeout=2).status_code == 200,
        START,
        "the south service up (registered under /south)",
    )
    assert httpx.get(slow_url, params={"seconds": "0"}, timeout=5).status_code == 503

    # 1. The region is created through sv-region's API: routable within 2 s.
    created = put_region(region_port, "south", {"discovery": "etcd:/south", "weight": 0})
    assert created.status_code == 201, created.text
    at = time.monotonic()
    took = wait_for(
        lambda: httpx.get(slow_url, params={"seconds": "0"}, timeout=2).status_code == 200,
        2.0,
        "south routable",
    )
    print(f"region created to routable: {took:.3f}s")  # noqa: T201 (the doc's number)
    resp = httpx.get(slow_url, params={"seconds": "0"}, timeout=2)
    assert resp.headers["x-edge-instance"] == f"sv-slow-south-{slow_port}"
    south = cluster()["discovery"]["regions"]["south"]  # type: ignore[index]
    assert south["source"] == "etcd:/south"
    assert south["stale"] is False
    assert time.monotonic() - at < 5

    # 2. Its discovery value changes to static (the topology has no south): its pools
    #    are the topology's again (none), the /south watcher is closed.
    replaced = put_region(region_port, "south", {"discovery": "static", "weight": 0})
    assert replaced.status_code == 200, replaced.text
    wait_for(
        lambda: httpx.get(slow_url, params={"seconds": "0"}, timeout=2).status_code == 503,
        2.0,
        "south back to static",
    )
    discovery = cluster()["discovery"]
    assert discovery["regions"]["south"]["source"] == "static"  # type: ignore[index]
    assert "etcd:/south" not in discovery["sources"]  # type: ignore[operator]

    # 3. And back: the watcher is opened again and the same instance serves.
    assert put_region(region_port, "south", {"discovery": "etcd:/south"}).status_code == 200
    wait_for(
        lambda: httpx.get(slow_url, params={"seconds": "0"}, timeout=2).status_code == 200,
        2.0,
        "south routable again",
    )
