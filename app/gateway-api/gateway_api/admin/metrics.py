"""The gateway's traffic metrics on the admin listener's ``/metrics``: every worker's
counters added up at scrape time, then written in Prometheus's text format.

Worker 0 (the admin listener's process) reads its own counters in-process and asks the
others over their Unix sockets (:func:`gateway_api.workers.fetch_worker_metrics`). How
each family merges:

- counters and histogram buckets: summed;
- in-flight requests and open WebSocket tunnels: summed;
- ``edge_gateway_instance_healthy``: the lowest value any worker reports (0 when a worker
  sees the instance down); ``edge_gateway_breaker_state``: the highest (2 when a worker
  has the breaker open);
- ``edge_gateway_route_table_info``: one series per (source, version, release) in force,
  its value the number of workers running it (two series while a reload spreads);
- ``edge_gateway_policy_version``: the oldest version any worker holds;
- ``edge_gateway_pool_instances`` and the ``edge_gateway_discovery_*`` families: every
  worker follows the same sources and applies the same changes, so the highest value any
  worker reports (a source stale in one worker is stale).

The metric names and labels are in doc/services/gateway-api.md ("Metrics").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from gateway_api.metrics import DURATION_BUCKETS, REFUSAL_REASONS, SERVER_REFUSALS
from gateway_api.workers import fetch_worker_metrics, worker_metrics

if TYPE_CHECKING:
    from gateway_api.gateway import Gateway

#: A discovery row's values after the source name (Discovery.metrics), and their series.
DISCOVERY_FIELDS = ("stale", "stale_seconds", "members", "resyncs", "joins", "leaves", "updates")

#: Every refusal reason, exposed at 0 until one happens (a rate needs the series).
REASONS = tuple(sorted({*REFUSAL_REASONS.values(), *SERVER_REFUSALS.values()}))


def merge(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Add up worker snapshots (:func:`gateway_api.workers.worker_metrics`)."""
    requests: dict[tuple[str, ...], int] = {}
    attempts: dict[tuple[str, ...], int] = {}
    refusals: dict[str, int] = {}
    route_latency: dict[str, list[float]] = {}
    upstream_latency: dict[str, list[float]] = {}
    healthy: dict[tuple[str, str], int] = {}
    breaker: dict[tuple[str, str], int] = {}
    tables: dict[tuple[str, str, int], int] = {}
    routes: dict[tuple[str, str, int], int] = {}
    policy: int | None = None
    pools: dict[tuple[str, str], int] = {}
    discovery: dict[str, list[float]] = {}
    in_flight = tunnels = workers = 0
    for snap in snapshots:
        workers += 1
        for *labels, n in snap.get("requests", []):
            key = tuple(labels)
            requests[key] = requests.get(key, 0) + int(n)
        for *labels, n in snap.get("attempts", []):
            key = tuple(labels)
            attempts[key] = attempts.get(key, 0) + int(n)
        for reason, n in snap.get("refusals", {}).items():
            refusals[reason] = refusals.get(reason, 0) + int(n)
        _add_histograms(route_latency, snap.get("route_latency", {}))
        _add_histograms(upstream_latency, snap.get("upstream_latency", {}))
        in_flight += int(snap.get("in_flight", 0))
        tunnels += int(snap.get("tunnels", 0))
        for upstream, instance, up, state in snap.get("instances", []):
            where = (upstream, instance)
            healthy[where] = min(healthy.get(where, 1), int(up))
            breaker[where] = max(breaker.get(where, 0), int(state))
        table = snap.get("route_table")
        if table:
            key3 = (str(table["source"]), str(table["version"]), int(table["release"]))
            tables[key3] = tables.get(key3, 0) + 1
            routes[key3] = int(table["routes"])
        for label, active, draining in snap.get("pools", []):
            for state, n in (("active", active), ("draining", draining)):
                pools[(label, state)] = max(pools.get((label, state), 0), int(n))
        for name, *values in snap.get("discovery", []):
            have = discovery.setdefault(str(name), [0.0] * len(DISCOVERY_FIELDS))
            for i, value in enumerate(values[: len(DISCOVERY_FIELDS)]):
                have[i] = max(have[i], float(value))
        version = snap.get("policy_version")
        if isinstance(version, int):
            policy = version if policy is None else min(policy, version)
    return {
        "workers": workers,
        "requests": requests,
        "attempts": attempts,
        "refusals": refusals,
        "route_latency": route_latency,
        "upstream_latency": upstream_latency,
        "in_flight": in_flight,
        "tunnels": tunnels,
        "healthy": healthy,
        "breaker": breaker,
        "route_tables": tables,
        "routes": routes,
        "policy_version": policy,
        "pools": pools,
        "discovery": discovery,
    }


def _add_histograms(into: dict[str, list[float]], more: dict[str, list[float]]) -> None:
    width = len(DURATION_BUCKETS) + 2  # the buckets, +Inf, and the sum
    for label, values in more.items():
        if len(values) != width:
            continue  # another bucket layout (a worker of another version): not addable
        have = into.get(label)
        if have is None:
            into[label] = list(values)
        else:
            for i, v in enumerate(values):
                have[i] += v


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: object) -> str:
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(value)


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: object) -> None:
        self.lines.append(f"{name}{_labels(**labels) if labels else ''} {_number(value)}")

    def histogram(self, name: str, values: list[float], **labels: object) -> None:
        cumulative = 0.0
        for bound, count in zip((*DURATION_BUCKETS, float("inf")), values, strict=False):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            self.sample(f"{name}_bucket", cumulative, **labels, le=le)
        self.sample(f"{name}_sum", values[-1], **labels)
        self.sample(f"{name}_count", cumulative, **labels)


def render(merged: dict[str, Any], *, workers: int) -> bytes:
    """The merged metrics in Prometheus's text exposition format (0.0.4)."""
    out = _Text()
    out.family(
        "edge_gateway_requests_total",
        "counter",
        "Requests answered on the public listener, by route name, method, status class "
        "and region (route and region are none when refused before they were known).",
    )
    for (route, method, status_class, region), n in sorted(merged["requests"].items()):
        out.sample(
            "edge_gateway_requests_total",
            n,
            route=route,
            method=method,
            status_class=status_class,
            region=region,
        )
    out.family(
        "edge_gateway_request_duration_seconds",
        "histogram",
        "Time from a request's head to its last response byte (or its refusal), by route.",
    )
    for route, values in sorted(merged["route_latency"].items()):
        out.histogram("edge_gateway_request_duration_seconds", values, route=route)
    out.family(
        "edge_gateway_upstream_duration_seconds",
        "histogram",
        "Time of one attempt on an upstream instance, by upstream pool (service/region).",
    )
    for upstream, values in sorted(merged["upstream_latency"].items()):
        out.histogram("edge_gateway_upstream_duration_seconds", values, upstream=upstream)
    out.family(
        "edge_gateway_upstream_attempts_total",
        "counter",
        "Attempts on upstream instances by outcome (ok, bad_status, timeout, "
        "connect_error, upstream_error, aborted); retry counts the retries sent.",
    )
    for (upstream, outcome), n in sorted(merged["attempts"].items()):
        out.sample("edge_gateway_upstream_attempts_total", n, upstream=upstream, outcome=outcome)
    out.family(
        "edge_gateway_refusals_total",
        "counter",
        "Requests the gateway refused itself, by reason.",
    )
    refusals = merged["refusals"]
    for reason in sorted({*REASONS, *refusals}):
        out.sample("edge_gateway_refusals_total", refusals.get(reason, 0), reason=reason)
    out.family(
        "edge_gateway_instance_healthy",
        "gauge",
        "1 when every worker sees the instance healthy (active and passive checks), else 0.",
    )
    for (upstream, instance), up in sorted(merged["healthy"].items()):
        out.sample("edge_gateway_instance_healthy", up, upstream=upstream, instance=instance)
    out.family(
        "edge_gateway_breaker_state",
        "gauge",
        "The instance's circuit breaker, the worst any worker has: 0 closed, 1 half-open, 2 open.",
    )
    for (upstream, instance), state in sorted(merged["breaker"].items()):
        out.sample("edge_gateway_breaker_state", state, upstream=upstream, instance=instance)
    out.family(
        "edge_gateway_requests_in_flight", "gauge", "Requests being handled, in all workers."
    )
    out.sample("edge_gateway_requests_in_flight", merged["in_flight"])
    out.family("edge_gateway_websocket_tunnels", "gauge", "Open WebSocket tunnels, in all workers.")
    out.sample("edge_gateway_websocket_tunnels", merged["tunnels"])
    out.family(
        "edge_gateway_route_table_info",
        "gauge",
        "The route table in force (source file or sv-config, digest, sv-config release); "
        "the value is the number of workers running it.",
    )
    for (source, version, release), n in sorted(merged["route_tables"].items()):
        out.sample(
            "edge_gateway_route_table_info", n, source=source, version=version, release=release
        )
    out.family(
        "edge_gateway_config_release",
        "gauge",
        "The sv-config release of the route table the most workers run (0: the file).",
    )
    tables = merged["route_tables"]
    if tables:
        newest = max(tables, key=lambda k: (tables[k], k[2]))
        out.sample("edge_gateway_config_release", newest[2])
        out.family("edge_gateway_routes", "gauge", "Routes in that route table.")
        out.sample("edge_gateway_routes", merged["routes"][newest])
    if merged["policy_version"] is not None:
        out.family(
            "edge_gateway_policy_version",
            "gauge",
            "The authorization policy version in force (the oldest any worker holds).",
        )
        out.sample("edge_gateway_policy_version", merged["policy_version"])
    _render_discovery(out, merged)
    out.family("edge_gateway_workers", "gauge", "Worker processes configured (GATEWAY_WORKERS).")
    out.sample("edge_gateway_workers", workers)
    out.family(
        "edge_gateway_workers_scraped",
        "gauge",
        "Workers whose counters this scrape includes (fewer while one restarts).",
    )
    out.sample("edge_gateway_workers_scraped", merged["workers"])
    return ("\n".join(out.lines) + "\n").encode()


def _render_discovery(out: _Text, merged: dict[str, Any]) -> None:
    out.family(
        "edge_gateway_pool_instances",
        "gauge",
        "Instances of each upstream pool: active (in the choice) or draining (left, "
        "requests still in flight).",
    )
    for (upstream, state), n in sorted(merged["pools"].items()):
        out.sample("edge_gateway_pool_instances", n, upstream=upstream, state=state)
    sources = sorted(merged["discovery"].items())
    families = (
        (
            "stale",
            "gauge",
            "1 while the discovery source does not answer (its pools are the last known), else 0.",
        ),
        ("stale_seconds", "gauge", "Seconds the source has been stale (0 when fresh)."),
        ("members", "gauge", "Members the source lists (all pools, gateway nodes included)."),
        ("resyncs", "counter", "Full listings of the source (the first, then each resync)."),
    )
    for index, (field, kind, help_text) in enumerate(families):
        name = f"edge_gateway_discovery_{field}" + ("_total" if kind == "counter" else "")
        out.family(name, kind, help_text)
        for source, values in sources:
            out.sample(name, values[index], source=source)
    out.family(
        "edge_gateway_discovery_changes_total",
        "counter",
        "Instances that joined, left or changed weight in the pools a source governs.",
    )
    for source, values in sources:
        for offset, change in enumerate(("join", "leave", "update")):
            out.sample(
                "edge_gateway_discovery_changes_total",
                values[4 + offset],
                source=source,
                change=change,
            )


async def gateway_metrics(gateway: Gateway) -> bytes:
    """This scrape's text: this worker's counters and every other worker's, merged."""
    workers = max(1, gateway.settings.workers)
    snapshots: list[dict[str, Any] | None] = [worker_metrics(gateway, 0)]
    if workers > 1:
        snapshots += await fetch_worker_metrics(gateway.settings, workers)
    return render(merge(s for s in snapshots if s is not None), workers=workers)
