"""The gateway's alert rules (deploy/observability/prometheus/rules/gateway.yml) under
``promtool check rules`` and ``promtool test rules``: burn-rate, breaker, unavailable
upstream, missing worker and refusal-spike alerts fire on synthetic series and stay
quiet on healthy ones; and every query of the gateway's Grafana dashboard parses.

promtool comes with Debian's ``prometheus`` package (tools/ci/ensure-services.sh installs
it). The unit tests are written here, as data, and handed to promtool as a file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "observability" / "prometheus" / "rules" / "gateway.yml"
DASHBOARD = ROOT / "deploy" / "observability" / "grafana" / "dashboards" / "gateway.json"
JOB = 'job="gateway-api",instance="127.0.0.1:7080"'
#: Series labelled by upstream instance keep their own ``instance`` label (the gateway's
#: scrape job sets ``honor_labels: true``; doc/services/gateway-api.md).
JOB_ONLY = 'job="gateway-api"'


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: tools/ci/ensure-services.sh installs Debian's prometheus"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _alerts() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def fired(alert: str, **labels: str) -> dict[str, Any]:
    """The alert as promtool must see it: its rule's labels and annotations, templated."""
    rule = _alerts()[alert]

    def render(text: str) -> str:
        text = re.sub(
            r"\{\{ if \$labels\.(\w+) \}\}(.*?)\{\{ end \}\}",
            lambda m: m.group(2) if labels.get(m.group(1)) else "",
            text,
        )
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)

    return {
        "exp_labels": {**labels, **rule.get("labels", {})},
        "exp_annotations": {k: render(v) for k, v in rule.get("annotations", {}).items()},
    }


def requests(ok: str, errors: str) -> list[dict[str, str]]:
    base = 'edge_gateway_requests_total{%s,route="GET /api/v1/x",method="GET",region="east",'
    return [
        {"series": base % JOB + 'status_class="2xx"}', "values": ok},
        {"series": base % JOB + 'status_class="5xx"}', "values": errors},
    ]


def latency(fast: str, count: str) -> list[dict[str, str]]:
    name = "edge_gateway_request_duration_seconds"
    return [
        {"series": f'{name}_bucket{{{JOB},route="GET /api/v1/x",le="0.5"}}', "values": fast},
        {"series": f'{name}_count{{{JOB},route="GET /api/v1/x"}}', "values": count},
    ]


def case(series: list[dict[str, str]], checks: list[tuple[str, str, list[Any]]]) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": at, "alertname": name, "exp_alerts": expected}
            for at, name, expected in checks
        ],
    }


job = {"job": "gateway-api"}
BREAKER = 'edge_gateway_breaker_state{%s,upstream="sv-user/east",instance="sv-user-east-7201"}'
HEALTHY = 'edge_gateway_instance_healthy{%s,upstream="sv-user/east",instance="sv-user-east-%d"}'
where = {"upstream": "sv-user/east", "instance": "sv-user-east-7201"}
STALE = 'edge_gateway_discovery_stale{%s,source="etcd:/edge/services"}'

TESTS: list[dict[str, Any]] = [
    # 2% of answers are 5xx (20 times the 0.1% budget): fast and slow burn both fire.
    case(
        requests("0+980x200", "0+20x200"),
        [
            (
                "70m",
                "EdgeGatewayAvailabilityBurnFast",
                [fired("EdgeGatewayAvailabilityBurnFast", **job)],
            ),
            (
                "150m",
                "EdgeGatewayAvailabilityBurnSlow",
                [fired("EdgeGatewayAvailabilityBurnSlow", **job)],
            ),
        ],
    ),
    # 0.05% 5xx: inside the budget, quiet.
    case(
        requests("0+9995x200", "0+5x200"),
        [
            ("70m", "EdgeGatewayAvailabilityBurnFast", []),
            ("190m", "EdgeGatewayAvailabilityBurnSlow", []),
        ],
    ),
    # No 5xx series at all: quiet too (the ratio is 0, not absent).
    case(
        requests("0+1000x100", "_x100")[:1],
        [("70m", "EdgeGatewayAvailabilityBurnFast", [])],
    ),
    # The burn stopped at 60 m. At 70 m the 1 h / 5 m pair is over but the 6 h / 30 m
    # pair still sees it; by 100 m the 30 m window is clean too, and the alert is over.
    case(
        requests("0+980x60 58800+1000x60", "0+20x60 1200+0x60"),
        [
            (
                "60m",
                "EdgeGatewayAvailabilityBurnFast",
                [fired("EdgeGatewayAvailabilityBurnFast", **job)],
            ),
            (
                "70m",
                "EdgeGatewayAvailabilityBurnFast",
                [fired("EdgeGatewayAvailabilityBurnFast", **job)],
            ),
            ("100m", "EdgeGatewayAvailabilityBurnFast", []),
        ],
    ),
    # 20% of requests slower than 0.5 s (the budget is 1%): latency burn fires.
    case(
        latency("0+800x200", "0+1000x200"),
        [
            ("70m", "EdgeGatewayLatencyBurnFast", [fired("EdgeGatewayLatencyBurnFast", **job)]),
            ("150m", "EdgeGatewayLatencyBurnSlow", [fired("EdgeGatewayLatencyBurnSlow", **job)]),
        ],
    ),
    # 0.5% slow: quiet.
    case(
        latency("0+995x200", "0+1000x200"),
        [
            ("70m", "EdgeGatewayLatencyBurnFast", []),
            ("190m", "EdgeGatewayLatencyBurnSlow", []),
        ],
    ),
    # A breaker open for over a minute fires; one open for a moment does not.
    case(
        [{"series": BREAKER % JOB_ONLY, "values": "0 0 2 2 2 2 2 2"}],
        [
            ("2m", "EdgeGatewayBreakerOpen", []),
            ("4m", "EdgeGatewayBreakerOpen", [fired("EdgeGatewayBreakerOpen", **job, **where)]),
        ],
    ),
    case(
        [{"series": BREAKER % JOB_ONLY, "values": "0 2 1 0 0 0 0 0"}],
        [("5m", "EdgeGatewayBreakerOpen", [])],
    ),
    # Every instance of a pool unhealthy: the upstream is unavailable; one of two is not.
    case(
        [
            {"series": HEALTHY % (JOB_ONLY, 7201), "values": "1 0 0 0 0"},
            {"series": HEALTHY % (JOB_ONLY, 7202), "values": "1 0 0 0 0"},
        ],
        [
            (
                "3m",
                "EdgeGatewayUpstreamUnavailable",
                [fired("EdgeGatewayUpstreamUnavailable", **job, upstream="sv-user/east")],
            ),
        ],
    ),
    case(
        [
            {"series": HEALTHY % (JOB_ONLY, 7201), "values": "1 0 0 0 0"},
            {"series": HEALTHY % (JOB_ONLY, 7202), "values": "1 1 1 1 1"},
        ],
        [("3m", "EdgeGatewayUpstreamUnavailable", [])],
    ),
    # Rate-limit refusals jump from 0.1/s to 5/s: a spike. A steady 2/s is not.
    case(
        [
            {
                "series": f'edge_gateway_refusals_total{{{JOB},reason="rate_limit"}}',
                "values": "0+6x65 390+300x20",
            },
            {
                "series": f'edge_gateway_refusals_total{{{JOB},reason="authn"}}',
                "values": "0+120x85",
            },
        ],
        [
            ("60m", "EdgeGatewayRefusalSpike", []),
            (
                "78m",
                "EdgeGatewayRefusalSpike",
                [fired("EdgeGatewayRefusalSpike", **job, reason="rate_limit")],
            ),
        ],
    ),
    # A discovery source stale for over 2 minutes fires; a blip of one minute does not.
    case(
        [{"series": STALE % JOB, "values": "0 1 1 1 1 1 0"}],
        [
            ("2m", "EdgeGatewayDiscoveryStale", []),
            (
                "4m",
                "EdgeGatewayDiscoveryStale",
                [
                    fired(
                        "EdgeGatewayDiscoveryStale",
                        **job,
                        source="etcd:/edge/services",
                    )
                ],
            ),
            ("6m", "EdgeGatewayDiscoveryStale", []),
        ],
    ),
    case(
        [{"series": STALE % JOB, "values": "0 1 0 1 0 1 0"}],
        [("5m", "EdgeGatewayDiscoveryStale", [])],
    ),
    # A worker missing from the scrapes for 5 minutes.
    case(
        [
            {"series": f"edge_gateway_workers{{{JOB}}}", "values": "2x10"},
            {"series": f"edge_gateway_workers_scraped{{{JOB}}}", "values": "2 1 1 1 1 1 1 1 1 1"},
        ],
        [
            ("3m", "EdgeGatewayWorkersMissing", []),
            (
                "8m",
                "EdgeGatewayWorkersMissing",
                [fired("EdgeGatewayWorkersMissing", **job, instance="127.0.0.1:7080")],
            ),
        ],
    ),
]


def write_unit_tests(folder: Path, rules: str, tests: list[dict[str, Any]] | None = None) -> Path:
    (folder / "gateway.yml").write_text(rules)
    unit = folder / "gateway_test.yml"
    unit.write_text(
        yaml.safe_dump(
            {"rule_files": ["gateway.yml"], "evaluation_interval": "1m", "tests": tests or TESTS},
            sort_keys=False,
        )
    )
    return unit


def test_the_gateway_rules_pass_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES), cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(600)  # promtool on a loaded 2-core machine
def test_the_gateway_alerts_fire_on_bad_series_and_stay_quiet_on_healthy_ones(
    tmp_path: Path,
) -> None:
    unit = write_unit_tests(tmp_path, RULES.read_text())
    result = promtool("test", "rules", unit.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
    tested = {c["alertname"] for t in TESTS for c in t["alert_rule_test"]}
    assert tested == set(_alerts()), "every gateway alert has a unit test"


@pytest.mark.timeout(600)  # promtool on a loaded 2-core machine
@pytest.mark.parametrize(
    ("alert", "original", "broken"),
    [
        (
            "EdgeGatewayBreakerOpen",
            "(edge_gateway_breaker_state) == 2",
            "(edge_gateway_breaker_state) == 3",
        ),
        (
            "EdgeGatewayDiscoveryStale",
            "(edge_gateway_discovery_stale) == 1",
            "(edge_gateway_discovery_stale) == 0",
        ),
        (
            "EdgeGatewayAvailabilityBurnFast",
            'edge_gateway_requests_total{status_class="5xx"}',
            'edge_gateway_requests_total{status_class="9xx"}',
        ),
        (
            "EdgeGatewayLatencyBurnFast",
            'edge_gateway_request_duration_seconds_bucket{le="0.5"}',
            'edge_gateway_request_duration_seconds_bucket{le="+Inf"}',
        ),
    ],
)
def test_the_unit_tests_catch_a_broken_rule(
    tmp_path: Path, alert: str, original: str, broken: str
) -> None:
    """The same unit tests (those of ``alert``) fail on a broken rule: they can fail."""
    rules = RULES.read_text()
    assert original in rules
    cases = [t for t in TESTS if any(c["alertname"] == alert for c in t["alert_rule_test"])]
    # Every occurrence: one burn-rate pair alone still fires when the other is broken.
    unit = write_unit_tests(tmp_path, rules.replace(original, broken), cases)
    result = promtool("test", "rules", unit.name, cwd=tmp_path)
    assert result.returncode != 0, result.stdout + result.stderr


def test_every_gateway_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """The dashboard's queries, as recording rules: promtool parses every one."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", []) if t.get("expr")]
    assert len(exprs) > 20
    rules = [{"record": f"edge_gateway_dashboard:q{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
