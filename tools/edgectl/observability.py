"""Prometheus scrape configurations and Grafana dashboards, written from the registry.

``make generate`` writes them under ``deploy/observability/`` (tools/edgectl/generate.py):
a new service in deploy/services.toml gets its scrape job and its RED dashboard. The
metric names are the platform's scheme (doc/observability.md):

- every service: ``edge_http_requests_total{service,method,route,status_class}``,
  ``edge_http_request_duration_seconds{service,method,route}`` (histogram) and
  ``edge_http_requests_in_flight{service}`` (edgelib's request middleware);
- the gateway: ``edge_gateway_*`` on its admin listener;
- each service's domain metrics: ``edge_<service>_*``.

``edgectl observe-config`` writes the scrape configuration of any topology file (the
shifted stacks of the tests, a laptop's own ports).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgectl.registry import Registry, Service
from edgelib.topology import Topology

OBSERVABILITY = "deploy/observability"
#: The rules are read from the source tree edgectl comes from (they are not in the registry).
SOURCE_RULES = Path(__file__).resolve().parents[2] / OBSERVABILITY / "prometheus" / "rules"
DASHBOARDS = f"{OBSERVABILITY}/grafana/dashboards"
#: The datasource every dashboard names (deploy/observability/grafana/provisioning).
DATASOURCE = {"type": "prometheus", "uid": "edge-prometheus"}
RULES_GLOB = "rules/*.yml"
GENERATED = "Generated from deploy/services.toml by make generate — do not edit."


# --- Prometheus ----------------------------------------------------------------------------


def scrape_config(
    topology: Topology,
    *,
    rule_files: Sequence[str] = (RULES_GLOB,),
    interval: str = "15s",
    gateway_target: str | None = None,
) -> str:
    """``prometheus.yml`` scraping every instance of ``topology`` and the gateway's admin
    listener; targets carry ``service``, ``region`` and ``instance_id`` labels."""
    jobs: dict[str, list[dict[str, Any]]] = {}
    gw = topology.gateway
    jobs["gateway-api"] = [
        {
            "targets": [gateway_target or f"127.0.0.1:{gw.admin_port}"],
            "labels": {"service": "gateway-api", "instance_id": "gateway-api"},
        }
    ]
    for spec in topology.instances:
        if spec.grpc_of is not None:
            continue  # a gRPC listener: its metrics are its instance's
        address = spec.url.split("://", 1)[-1].rstrip("/")
        labels = {"service": spec.service, "instance_id": spec.id}
        if spec.region:
            labels["region"] = spec.region
        jobs.setdefault(spec.service, []).append({"targets": [address], "labels": labels})
    doc: dict[str, Any] = {
        "global": {
            "scrape_interval": interval,
            "evaluation_interval": interval,
            "external_labels": {"platform": "edge"},
        },
        "rule_files": list(rule_files),
        "scrape_configs": [
            {"job_name": name, "metrics_path": "/metrics", "static_configs": targets}
            # The gateway's per-instance gauges label the upstream instance `instance`:
            # its labels win (doc/services/gateway-api.md).
            | ({"honor_labels": True} if name == "gateway-api" else {})
            for name, targets in jobs.items()
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def prometheus_rule(rules_dir: Path) -> str:
    """The alert rules of ``rules_dir`` as one PrometheusRule (the operator's component)."""
    groups: list[Any] = []
    for path in sorted(rules_dir.glob("*.yml")):
        groups += yaml.safe_load(path.read_text())["groups"]
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "edge", "labels": {"edge/monitoring": "true"}},
        "spec": {"groups": groups},
    }
    return yaml.safe_dump(doc, sort_keys=False, width=100)


# --- Grafana -------------------------------------------------------------------------------


@dataclass
class Panel:
    """One Grafana panel: a title, its PromQL targets (legend by label) and its kind."""

    title: str
    exprs: Sequence[tuple[str, str]]
    kind: str = "timeseries"
    unit: str = "short"
    description: str = ""
    width: int = 12


@dataclass
class Dashboard:
    uid: str
    title: str
    tags: Sequence[str]
    rows: Sequence[tuple[str, Sequence[Panel]]]
    description: str = ""
    refresh: str = "30s"
    time_from: str = "now-6h"
    variables: list[dict[str, Any]] = field(default_factory=list)


def _panel_json(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    height = 5 if panel.kind == "stat" else 8
    out: dict[str, Any] = {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                "instant": panel.kind == "stat",
                "range": panel.kind != "stat",
            }
            for i, (expr, legend) in enumerate(panel.exprs)
        ],
    }
    if panel.kind == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    return out


def dashboard_json(d: Dashboard) -> str:
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row_title, row_panels in d.rows:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid, y, x, row_height = pid + 1, y + 1, 0, 0
        for panel in row_panels:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            item = _panel_json(panel, pid, x, y)
            panels.append(item)
            row_height = max(row_height, item["gridPos"]["h"])
            pid, x = pid + 1, x + panel.width
        y += row_height
    doc = {
        # JSON has no comments; Grafana keeps unknown keys.
        "__comment": GENERATED,
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": list(d.tags),
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": d.refresh,
        "time": {"from": d.time_from, "to": "now"},
        "timezone": "browser",
        "templating": {"list": d.variables},
        "annotations": {"list": []},
        "panels": panels,
    }
    return json.dumps(doc, indent=2) + "\n"


def _rate(selector: str, window: str = "1m") -> str:
    return f"rate({selector}[{window}])"


def red_panels(service: str) -> list[Panel]:
    """Rate, errors and duration of one service, from edgelib's request metrics."""
    sel = f'service="{service}"'
    total = f"edge_http_requests_total{{{sel}}}"
    buckets = f"edge_http_request_duration_seconds_bucket{{{sel}}}"
    return [
        Panel(
            "Requests/s by route", [(f"sum by (route) ({_rate(total)})", "{{route}}")], unit="reqps"
        ),
        Panel(
            "Responses/s by status class",
            [(f"sum by (status_class) ({_rate(total)})", "{{status_class}}")],
            unit="reqps",
        ),
        Panel(
            "Server errors (5xx share)",
            [
                (
                    f'(sum(rate(edge_http_requests_total{{{sel},status_class="5xx"}}[5m])) '
                    f"or vector(0)) / sum({_rate(total, '5m')})",
                    "5xx share",
                )
            ],
            unit="percentunit",
            description="5xx answers over all answers, last 5 minutes (0 when none failed).",
        ),
        Panel(
            "Latency p50 / p95 / p99",
            [
                (f"histogram_quantile({q}, sum by (le) ({_rate(buckets, '5m')}))", f"p{p}")
                for q, p in (("0.5", 50), ("0.95", 95), ("0.99", 99))
            ],
            unit="s",
        ),
        Panel(
            "p95 latency by route",
            [
                (
                    f"histogram_quantile(0.95, sum by (le, route) ({_rate(buckets, '5m')}))",
                    "{{route}}",
                )
            ],
            unit="s",
        ),
        Panel(
            "In flight and instances up",
            [
                (
                    f"sum by (instance_id) (edge_http_requests_in_flight{{{sel}}})",
                    "{{instance_id}}",
                ),
                (f'sum(up{{job="{service}"}})', "instances up"),
            ],
        ),
    ]


#: Domain panels of each service's own dashboard (wallet and notices get their own).
DOMAIN_PANELS: dict[str, list[Panel]] = {
    "auth-jwt": [
        Panel(
            "Tokens issued/s",
            [("sum by (kind) (rate(edge_auth_jwt_tokens_issued_total[1m]))", "{{kind}}")],
            unit="ops",
        ),
        Panel(
            "Failed logins/s by reason",
            [("sum by (reason) (rate(edge_auth_jwt_failed_logins_total[1m]))", "{{reason}}")],
            unit="ops",
        ),
    ],
    "sv-log": [
        Panel(
            "Records stored and dropped/s",
            [
                ("sum(rate(edge_sv_log_records_received_total[1m]))", "stored"),
                ("sum(rate(edge_sv_log_records_dropped_total[1m]))", "dropped at intake"),
                ("sum(rate(edge_log_shipping_dropped_total[1m]))", "dropped by shippers"),
            ],
            unit="ops",
        ),
        Panel(
            "Intake batches/s by outcome",
            [("sum by (outcome) (rate(edge_sv_log_batches_total[1m]))", "{{outcome}}")],
            unit="ops",
        ),
        Panel(
            "Shipping queue depth by service",
            [("sum by (service) (edge_log_shipping_queue_depth)", "{{service}}")],
        ),
    ],
    "sv-config": [
        Panel(
            "Releases by kind (1 h)",
            [("sum by (kind) (increase(edge_sv_config_releases_total[1h]))", "{{kind}}")],
        ),
        Panel(
            "Watch answers/s",
            [
                ("sum by (outcome) (rate(edge_sv_config_pushes_total[1m]))", "{{outcome}}"),
                ("sum(rate(edge_sv_config_namespaces_pushed_total[1m]))", "namespaces pushed"),
            ],
            unit="ops",
        ),
        Panel(
            "Watches waiting",
            [("sum by (instance_id) (edge_sv_config_watches_waiting)", "{{instance_id}}")],
            description="Clients' long polls waiting for a change (each running release "
            "a client holds is edge_config_release{namespace} on that client).",
        ),
    ],
}


def service_dashboard(svc: Service) -> Dashboard:
    rows: list[tuple[str, Sequence[Panel]]] = [("Rate, errors, duration", red_panels(svc.name))]
    if svc.name in DOMAIN_PANELS:
        rows.append(("Domain", DOMAIN_PANELS[svc.name]))
    return Dashboard(
        uid=f"edge-svc-{svc.name}",
        title=f"Edge / service / {svc.name}",
        tags=["edge", "service", svc.plane],
        description=f"RED metrics of {svc.name} ({svc.plane}), all instances"
        + (" of every region" if svc.regional else ""),
        rows=rows,
    )


GW_TOTAL = "edge_gateway_requests_total"


def overview_dashboard(registry: Registry) -> Dashboard:
    return Dashboard(
        uid="edge-overview",
        title="Edge / platform overview",
        tags=["edge", "overview"],
        description="The four figures and today's traffic against yesterday's.",
        rows=[
            (
                "Platform",
                [
                    Panel(
                        "Services",
                        [('count(count by (job) (up{job!="gateway-api"} == 1))', "services")],
                        kind="stat",
                        width=6,
                        description=f"Services with at least one instance up "
                        f"(the registry has {len(registry.services) - 1} besides the gateway).",
                    ),
                    Panel(
                        "Apps",
                        [("vector(0)", "apps")],
                        kind="stat",
                        width=6,
                        description="Registered apps (OAuth2 clients). Always 0 until tenants "
                        "and apps exist (the control plane's next stage); then their metric.",
                    ),
                    Panel(
                        "Current QPS",
                        [(f"sum(rate({GW_TOTAL}[1m]))", "req/s")],
                        kind="stat",
                        unit="reqps",
                        width=6,
                    ),
                    Panel(
                        "Requests today",
                        [(f"sum(increase({GW_TOTAL}[1d]))", "requests")],
                        kind="stat",
                        width=6,
                        description="Requests through the gateway in the last 24 hours.",
                    ),
                ],
            ),
            (
                "Traffic",
                [
                    Panel(
                        "Traffic today against yesterday",
                        [
                            (f"sum(rate({GW_TOTAL}[5m]))", "today"),
                            (f"sum(rate({GW_TOTAL}[5m] offset 1d))", "yesterday"),
                        ],
                        unit="reqps",
                        width=24,
                    ),
                    Panel(
                        "Requests/s by region and status class",
                        [
                            (
                                f"sum by (region, status_class) (rate({GW_TOTAL}[1m]))",
                                "{{region}} {{status_class}}",
                            )
                        ],
                        unit="reqps",
                    ),
                    Panel(
                        "Instances up by service",
                        [("sum by (job) (up)", "{{job}}")],
                    ),
                ],
            ),
        ],
    )


def wallet_dashboard() -> Dashboard:
    return Dashboard(
        uid="edge-wallet",
        title="Edge / wallet (sv-money)",
        tags=["edge", "wallet"],
        rows=[
            (
                "Transfers",
                [
                    Panel(
                        "Transfers/s by kind and outcome",
                        [
                            (
                                "sum by (kind, outcome) (rate(edge_sv_money_transfers_total[1m]))",
                                "{{kind}} {{outcome}}",
                            )
                        ],
                        unit="ops",
                    ),
                    Panel(
                        "Transfers/s by region",
                        [
                            (
                                "sum by (region) (rate(edge_sv_money_transfers_total[1m]))",
                                "{{region}}",
                            )
                        ],
                        unit="ops",
                    ),
                    Panel(
                        "Holds/s by action and outcome",
                        [
                            (
                                "sum by (action, outcome) (rate(edge_sv_money_holds_total[1m]))",
                                "{{action}} {{outcome}}",
                            )
                        ],
                        unit="ops",
                    ),
                    Panel(
                        "Group commit: transfers per transaction (p50 / p95)",
                        [
                            (
                                f"histogram_quantile({q}, sum by (le) "
                                "(rate(sv_money_group_commit_batch_size_bucket[5m])))",
                                f"p{p}",
                            )
                            for q, p in (("0.5", 50), ("0.95", 95))
                        ],
                    ),
                ],
            ),
            (
                "Audit",
                [
                    Panel(
                        "Last audit result by region (1 = clean)",
                        [("min by (region) (edge_sv_money_audit_ok)", "{{region}}")],
                        kind="stat",
                        width=8,
                    ),
                    Panel(
                        "Violations found by the last audit",
                        [("max by (region) (edge_sv_money_audit_violations)", "{{region}}")],
                        kind="stat",
                        width=8,
                    ),
                    Panel(
                        "Age of the last audit",
                        [
                            (
                                "time() - max by (region) "
                                "(edge_sv_money_audit_last_run_timestamp_seconds)",
                                "{{region}}",
                            )
                        ],
                        kind="stat",
                        unit="s",
                        width=8,
                    ),
                ],
            ),
        ],
    )


def notices_dashboard() -> Dashboard:
    return Dashboard(
        uid="edge-notices",
        title="Edge / notices (sv-notice)",
        tags=["edge", "notices"],
        rows=[
            (
                "Delivery",
                [
                    Panel(
                        "Sent/s by channel",
                        [
                            (
                                "sum by (channel) (rate(edge_sv_notice_notices_sent_total[1m]))",
                                "{{channel}}",
                            )
                        ],
                        unit="ops",
                    ),
                    Panel(
                        "Failed attempts/s by channel",
                        [
                            (
                                "sum by (channel) (rate(edge_sv_notice_notices_failed_total[1m]))",
                                "{{channel}}",
                            )
                        ],
                        unit="ops",
                    ),
                    Panel(
                        "Dead-lettered (1 h) by channel",
                        [
                            (
                                "sum by (channel) "
                                "(increase(edge_sv_notice_notices_dead_lettered_total[1h]))",
                                "{{channel}}",
                            )
                        ],
                    ),
                    Panel(
                        "Dead-letter list by region and channel",
                        [
                            (
                                "max by (region, channel) (edge_sv_notice_dead_letters)",
                                "{{region}} {{channel}}",
                            )
                        ],
                    ),
                ],
            ),
        ],
    )


def dashboard_files(registry: Registry) -> dict[str, str]:
    """Relative path -> JSON of every generated dashboard."""
    files = {
        f"{DASHBOARDS}/overview.json": dashboard_json(overview_dashboard(registry)),
        f"{DASHBOARDS}/wallet.json": dashboard_json(wallet_dashboard()),
        f"{DASHBOARDS}/notices.json": dashboard_json(notices_dashboard()),
    }
    for svc in registry.services:
        if svc.plane == "gateway":
            continue  # gateway.json: its own metrics, per route and upstream
        files[f"{DASHBOARDS}/service-{svc.name}.json"] = dashboard_json(service_dashboard(svc))
    return files
