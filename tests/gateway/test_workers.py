"""Several gateway workers on one port: the admin listener shows all of them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest

from gateway_api.workers import read_snapshots, stats_dir, with_workers
from tests.gateway.conftest import GatewayUnderTest, worker_gateway

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
    routes = '[[routes]]\nprefix = "/api/v1/echo"\nservice = "echo"\naccess = "public"\n'
    with worker_gateway(tmp_path, routes) as gw, httpx.Client(timeout=5) as client:
        assert len({w["pid"] for w in gw.workers}) == 2
        served = 0
        for _ in range(40):
            # A new connection each time: the kernel spreads them over the workers.
            with httpx.Client() as fresh:
                served += fresh.get(f"http://127.0.0.1:{gw.public}/api/v1/echo/x").is_success
        assert served == 40
        time.sleep(1.5)  # one snapshot interval
        cluster = client.get(f"http://127.0.0.1:{gw.admin}/cluster").json()
        echo = next(p for p in cluster["services"] if p["service"] == "echo")
        assert echo["instances"][0]["requests"] == 40
        assert all(w["rss_mb"] < 150 for w in cluster["workers"])
