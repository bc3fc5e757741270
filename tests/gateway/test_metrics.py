"""The gateway's traffic metrics: counted per worker, merged at scrape time, exposed on
the admin listener's /metrics (doc/services/gateway-api.md, "Metrics")."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway_api.admin.metrics import merge, render
from gateway_api.metrics import DURATION_BUCKETS, GatewayMetrics, Histogram, status_class
from tests.gateway.conftest import GatewayUnderTest, worker_gateway


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, parsed by prometheus_client's own parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def total(found: dict[Any, float], name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


def test_histogram_buckets_are_upper_bounds_inclusive() -> None:
    h = Histogram()
    for v in (0.0005, 0.001, 0.0011, 7.0, 11.0):
        h.observe(v)
    assert h.counts[0] == 2  # le=0.001 holds 0.0005 and 0.001
    assert h.counts[1] == 1  # le=0.0025
    assert h.counts[DURATION_BUCKETS.index(10.0)] == 1
    assert h.counts[-1] == 1  # +Inf
    assert h.sum == pytest.approx(18.0026)


def test_status_classes_and_unknown_methods_stay_bounded() -> None:
    assert [status_class(s) for s in (101, 200, 304, 404, 499, 503, 999, 0)] == [
        "1xx", "2xx", "3xx", "4xx", "4xx", "5xx", "5xx", "1xx",
    ]  # fmt: skip
    m = GatewayMetrics()
    m.request("r", "BREW", 200, "east", 0.01)
    m.request("r", "GET", 200, "east", 0.01)
    assert m.requests == {("r", "other", "2xx", "east"): 1, ("r", "GET", "2xx", "east"): 1}
    m.refused("no-route")
    m.refused("gateway-timeout")  # the upstream's failure, not a refusal
    m.refused_by_server(431)
    assert m.refusals == {"no_route": 1, "header_size": 1}


def worker_snapshot(
    metrics: GatewayMetrics,
    *,
    healthy: int = 1,
    breaker: int = 0,
    version: str = "abc",
    policy: int | None = 7,
) -> dict[str, Any]:
    snap = metrics.snapshot()
    snap["instances"] = [["echo", "echo-1", healthy, breaker], ["sv-user/east", "u-1", 1, 0]]
    snap["route_table"] = {"source": "file", "version": version, "release": 0, "routes": 3}
    snap["policy_version"] = policy
    return snap


def test_merge_adds_counters_and_buckets_and_keeps_the_worst_instance_view() -> None:
    one, two = GatewayMetrics(), GatewayMetrics()
    for _ in range(3):
        one.request("GET /a", "GET", 200, "east", 0.002)
    two.request("GET /a", "GET", 200, "east", 0.2)
    two.request("GET /a", "GET", 503, "east", 3.0)
    one.attempt("echo", "ok", 0.001)
    two.attempt("echo", "timeout", 1.0)
    two.retry("echo")
    one.refused("rate-limited")
    two.refused("rate-limited")
    one.in_flight, two.in_flight, two.tunnels = 2, 1, 4
    merged = merge(
        [
            worker_snapshot(one),
            worker_snapshot(two, healthy=0, breaker=2, version="def", policy=6),
        ]
    )
    assert merged["requests"] == {
        ("GET /a", "GET", "2xx", "east"): 4,
        ("GET /a", "GET", "5xx", "east"): 1,
    }
    assert merged["attempts"] == {("echo", "ok"): 1, ("echo", "timeout"): 1, ("echo", "retry"): 1}
    assert merged["refusals"] == {"rate_limit": 2}
    buckets = merged["route_latency"]["GET /a"]
    assert sum(buckets[:-1]) == 5
    assert buckets[-1] == pytest.approx(3 * 0.002 + 0.2 + 3.0)
    assert (merged["in_flight"], merged["tunnels"], merged["workers"]) == (3, 4, 2)
    assert merged["healthy"][("echo", "echo-1")] == 0
    assert merged["breaker"][("echo", "echo-1")] == 2
    assert merged["healthy"][("sv-user/east", "u-1")] == 1
    assert merged["route_tables"] == {("file", "abc", 0): 1, ("file", "def", 0): 1}
    assert merged["policy_version"] == 6


def test_render_is_valid_exposition_with_cumulative_buckets() -> None:
    m = GatewayMetrics()
    m.request('GET /a"b', "GET", 200, "east", 0.003)  # a quote in a label value is escaped
    m.request('GET /a"b', "GET", 200, "east", 0.03)
    m.attempt("echo", "ok", 0.002)
    text = render(merge([worker_snapshot(m)]), workers=1).decode()
    found = samples(text)
    route = {"route": 'GET /a"b'}
    assert value(found, "edge_gateway_requests_total", **route, method="GET",
                 status_class="2xx", region="east") == 2  # fmt: skip
    bucket = "edge_gateway_request_duration_seconds_bucket"
    assert value(found, bucket, **route, le="0.001") == 0
    assert value(found, bucket, **route, le="0.005") == 1
    assert value(found, bucket, **route, le="0.05") == 2
    assert value(found, bucket, **route, le="+Inf") == 2
    assert value(found, "edge_gateway_request_duration_seconds_count", **route) == 2
    assert value(found, "edge_gateway_upstream_attempts_total", upstream="echo", outcome="ok") == 1
    # Every refusal reason has a series from the start (rates need one).
    assert value(found, "edge_gateway_refusals_total", reason="authz") == 0
    assert ("edge_gateway_refusals_total", frozenset({("reason", "authz")})) in found
    assert value(found, "edge_gateway_breaker_state", upstream="echo", instance="echo-1") == 0
    assert value(found, "edge_gateway_route_table_info", source="file", version="abc",
                 release="0") == 1  # fmt: skip
    assert value(found, "edge_gateway_policy_version") == 7
    assert value(found, "edge_gateway_workers_scraped") == 1


async def scrape(admin: str) -> dict[Any, float]:
    async with httpx.AsyncClient() as c:
        response = await c.get(admin + "/metrics")
    assert response.status_code == 200
    return samples(response.text)


async def test_one_gateway_counts_routes_attempts_and_refusals(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    for _ in range(5):
        assert (await client.get(gw.url + "/api/v1/echo/x")).status_code == 200
    assert (await client.post(gw.url + "/api/v1/echo/x", content=b"{}")).status_code == 200
    assert (await client.get(gw.url + "/nowhere/at/all")).status_code == 404
    assert (await client.get(gw.url + "/api/v1/private/x")).status_code == 401
    gw.upstreams["a"].truncate = True  # a GET broken on "a" is retried on "b"
    for _ in range(4):
        assert (await client.get(gw.url + "/api/v1/echo/y")).status_code == 200
    found = await scrape(gw.admin)
    echo = {"route": "* /api/v1/echo", "region": "global"}
    assert value(found, "edge_gateway_requests_total", **echo, method="GET",
                 status_class="2xx") == 9  # fmt: skip
    assert value(found, "edge_gateway_requests_total", **echo, method="POST",
                 status_class="2xx") == 1  # fmt: skip
    # Refused before a route (or before the region) was known: "none".
    assert value(found, "edge_gateway_requests_total", route="none", method="GET",
                 status_class="4xx", region="none") == 1  # fmt: skip
    assert value(found, "edge_gateway_requests_total", route="* /api/v1/private", method="GET",
                 status_class="4xx", region="none") == 1  # fmt: skip
    assert value(found, "edge_gateway_refusals_total", reason="no_route") == 1
    assert value(found, "edge_gateway_refusals_total", reason="authn") == 1
    assert total(found, "edge_gateway_requests_total") == 12
    assert value(found, "edge_gateway_request_duration_seconds_count", route="* /api/v1/echo") == 10
    attempts = "edge_gateway_upstream_attempts_total"
    bad = value(found, attempts, upstream="echo", outcome="upstream_error")
    assert bad >= 1  # round robin sent some of the last four to "a" first
    assert value(found, attempts, upstream="echo", outcome="retry") == bad
    assert value(found, attempts, upstream="echo", outcome="ok") == 10
    assert value(found, "edge_gateway_upstream_duration_seconds_count", upstream="echo") == 10 + bad
    for inst in gw.gateway.upstreams.all_instances():
        assert value(found, "edge_gateway_instance_healthy", upstream="echo",
                     instance=inst.spec.id) == 1  # fmt: skip
    assert value(found, "edge_gateway_requests_in_flight") == 0
    [table] = [ls for (n, ls), v in found.items() if n == "edge_gateway_route_table_info"]
    assert dict(table)["source"] == "file"
    assert len(dict(table)["version"]) == 12
    # The admin app's own request metrics are still there.
    assert any(n.startswith("edge_http_request") for n, _ in found)
    # A static topology is a discovery source too: never stale, its instances as members.
    assert value(found, "edge_gateway_discovery_stale", source="static") == 0
    assert value(found, "edge_gateway_discovery_members", source="static") == len(
        gw.gateway.upstreams.all_instances()
    )
    assert value(found, "edge_gateway_pool_instances", upstream="echo", state="draining") == 0


async def test_breaker_state_and_health_show_on_scrape(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    inst = next(i for i in gw.gateway.upstreams.all_instances() if i.url.endswith(
        f":{gw.ports['a']}"))  # fmt: skip
    inst.breaker.on_failure(time.monotonic())
    inst.breaker.on_failure(time.monotonic())
    inst.breaker.on_failure(time.monotonic())
    found = await scrape(gw.admin)
    assert value(found, "edge_gateway_breaker_state", upstream="echo", instance=inst.spec.id) == 2


@pytest.mark.e2e
@pytest.mark.timeout(600)  # starting two workers takes minutes on a loaded 2-core machine
def test_two_workers_one_scrape_counts_every_request_exactly(tmp_path: Path) -> None:
    """GATEWAY_WORKERS=2 against a real upstream: one scrape's counter equals N."""
    routes = '[[routes]]\nprefix = "/api/v1/echo"\nservice = "echo"\naccess = "public"\n'
    requests = 200
    with worker_gateway(tmp_path, routes) as gw:
        metrics_url = f"http://127.0.0.1:{gw.admin}/metrics"
        with httpx.Client(timeout=5) as admin:
            # Worker 1's socket may lag its first snapshot, and the upstream may not be
            # up yet: wait until both workers answer and both see the upstream healthy.
            deadline = time.monotonic() + 60
            while True:
                found = samples(admin.get(metrics_url).text)
                ready = value(found, "edge_gateway_workers_scraped") == 2 and (
                    total(found, "edge_gateway_instance_healthy", upstream="echo") == 1
                )
                if ready or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert value(found, "edge_gateway_workers_scraped") == 2
            assert total(found, "edge_gateway_instance_healthy", upstream="echo") == 1
            assert total(found, "edge_gateway_requests_total") == 0
            for i in range(requests):
                # A fresh connection each: the kernel spreads them over both workers.
                with httpx.Client(timeout=5) as fresh:
                    r = fresh.get(f"http://127.0.0.1:{gw.public}/api/v1/echo/{i}")
                    assert r.status_code == 200
            found = samples(admin.get(metrics_url).text)  # one scrape, right after
            time.sleep(1.5)  # the /cluster snapshots are written each second
            workers = admin.get(f"http://127.0.0.1:{gw.admin}/cluster").json()["workers"]
    assert value(found, "edge_gateway_workers_scraped") == 2
    assert total(found, "edge_gateway_requests_total") == requests
    assert value(found, "edge_gateway_requests_total", route="* /api/v1/echo", method="GET",
                 status_class="2xx", region="global") == requests  # fmt: skip
    assert value(found, "edge_gateway_upstream_attempts_total", upstream="echo",
                 outcome="ok") == requests  # fmt: skip
    assert value(found, "edge_gateway_request_duration_seconds_count",
                 route="* /api/v1/echo") == requests  # fmt: skip
    # Both workers served part of it, so the total above is a merge, not one worker's.
    served = [w["requests"] for w in workers]
    assert len(served) == 2
    assert all(n > 0 for n in served), workers
    assert sum(served) == requests
