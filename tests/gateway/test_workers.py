"""Several gateway workers on one port: the admin listener shows all of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from gateway_api.workers import read_snapshots, stats_dir, with_workers
from tests.gateway.conftest import GatewayUnderTest, free_port

ROOT = Path(__file__).parents[2]


def test_cluster_adds_up_every_live_workers_counters(gw: GatewayUnderTest) -> None:
    settings = gw.gateway.settings
    folder = stats_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    inst = gw.gateway.upstreams.all_instances()[0]
    inst.served = 5
    now = time.time()
    for worker, requests, health, written in [
        (1, 7, "up", now),
        (2, 11, "down", now),
        (3, 1000, "up", now - 60),  # gone: its stale snapshot is ignored
    ]:
        snapshot = {
            "worker": worker,
            "pid": 1_000_000 + worker,
            "started": now - 10,
            "written": written,
            "rss_bytes": 50 * 2**20,
            "instances": {
                inst.spec.id: {
                    "requests": requests,
                    "errors": 0,
                    "in_flight": 1,
                    "health": health,
                    "circuit": "closed",
                }
            },
        }
        (folder / f"worker-{worker}.json").write_bytes(orjson.dumps(snapshot))
    assert [s["worker"] for s in read_snapshots(settings)] == [1, 2]
    cluster = with_workers(gw.gateway, gw.gateway.cluster())
    [merged] = [i for p in cluster["services"] for i in p["instances"] if i["id"] == inst.spec.id]
    assert merged["requests"] == 5 + 7 + 11
    assert merged["in_flight"] == 2
    assert merged["down_in_workers"] == 1
    assert [w["worker"] for w in cluster["workers"]] == [1, 2]


@pytest.mark.e2e
def test_two_worker_processes_serve_one_port_and_admin_shows_both(tmp_path: Path) -> None:
    upstream_port, public, admin = free_port(), free_port(), free_port()
    (tmp_path / "topology.toml").write_text(
        f'[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n'
        f'[[services]]\nname = "echo"\ninstances = [{{ port = {upstream_port} }}]\n'
        f'[[services]]\nname = "auth-jwt"\ninstances = [{{ port = {upstream_port} }}]\n'
        f'[[services]]\nname = "auth-rbac"\ninstances = [{{ port = {upstream_port} }}]\n'
    )
    (tmp_path / "routes.toml").write_text(
        '[[routes]]\nprefix = "/api/v1/echo"\nservice = "echo"\naccess = "public"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "GATEWAY_"))}
    env.update(
        GATEWAY_WORKERS="2",
        GATEWAY_PORT=str(public),
        GATEWAY_ADMIN_PORT=str(admin),
        GATEWAY_TOPOLOGY=str(tmp_path / "topology.toml"),
        GATEWAY_ROUTES=str(tmp_path / "routes.toml"),
        EDGE_VAR_DIR=str(tmp_path / "var"),
    )
    upstream = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.gateway.test_workers:tiny_app", "--port",
         str(upstream_port), "--log-level", "warning"],
        cwd=ROOT,
    )  # fmt: skip
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway_api"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with httpx.Client(timeout=5) as client:
            deadline = time.monotonic() + 90
            workers: list[dict[str, object]] = []
            while time.monotonic() < deadline:
                try:
                    workers = client.get(f"http://127.0.0.1:{admin}/cluster").json()["workers"]
                except (httpx.HTTPError, ValueError, KeyError):
                    workers = []
                if len(workers) == 2:
                    break
                time.sleep(0.5)
            assert len(workers) == 2, workers
            assert len({w["pid"] for w in workers}) == 2
            served = 0
            for _ in range(40):
                # A new connection each time: the kernel spreads them over the workers.
                with httpx.Client() as fresh:
                    served += fresh.get(f"http://127.0.0.1:{public}/api/v1/echo/x").is_success
            assert served == 40
            time.sleep(1.5)  # one snapshot interval
            cluster = client.get(f"http://127.0.0.1:{admin}/cluster").json()
            echo = next(p for p in cluster["services"] if p["service"] == "echo")
            assert echo["instances"][0]["requests"] == 40
            assert all(w["rss_mb"] < 150 for w in cluster["workers"])
    finally:
        os.killpg(gateway.pid, signal.SIGTERM)
        gateway.wait(timeout=30)
        upstream.terminate()
        upstream.wait(timeout=10)


async def tiny_app(scope, receive, send):  # type: ignore[no-untyped-def]
    """The upstream for the worker test: 200 for everything, /healthz included."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
