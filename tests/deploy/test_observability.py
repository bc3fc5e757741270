"""deploy/observability: promtool checks the alert rules and config, and runs their unit tests.

promtool comes with Debian's ``prometheus`` package (tools/ci/ensure-services.sh installs
it for ``make test``). The dashboards' queries are evaluated against a real Prometheus in
tests/e2e/test_observability.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
PROM = OBS / "prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM / "tests").glob("*_test.yml"))
DASHBOARDS = sorted((OBS / "grafana" / "dashboards").glob("*.json"))


def _services() -> list[dict[str, str]]:
    services: list[dict[str, str]] = tomllib.loads((ROOT / "deploy/services.toml").read_text())[
        "services"
    ]
    return services


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: tools/ci/ensure-services.sh installs Debian's prometheus"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_every_alert_rule_passes_promtool_check_rules() -> None:
    assert RULES, "no rule files"
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("unit", RULE_TESTS, ids=lambda p: p.name)
def test_alert_rule_unit_tests_pass(unit: Path) -> None:
    result = promtool("test", "rules", str(unit.relative_to(PROM)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_the_rule_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    """A rule that never fires (threshold moved) fails the unit tests: they can fail."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    rules = (PROM / "rules" / "platform.yml").read_text()
    broken = rules.replace("expr: up == 0", "expr: up == 2")
    assert broken != rules
    (tmp_path / "rules" / "platform.yml").write_text(broken)
    shutil.copy(PROM / "tests" / "platform_test.yml", tmp_path / "tests")
    result = promtool("test", "rules", "tests/platform_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "EdgeInstanceDown" in result.stdout + result.stderr


def test_every_alert_is_unit_tested() -> None:
    alerts = {
        rule["alert"]
        for path in RULES
        if path.name != "gateway.yml"  # the gateway's rules have their own tests
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested = {
        case["alertname"]
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    }
    assert alerts - tested == set()


@pytest.mark.parametrize("name", ["prometheus-local.yml", "prometheus-compose.yml"])
def test_the_scrape_configs_pass_promtool_check_config(name: str) -> None:
    result = promtool("check", "config", name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scrape_config_has_a_job_for_every_local_service() -> None:
    doc = yaml.safe_load((PROM / "prometheus-local.yml").read_text())
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    registry = {svc["name"] for svc in _services()}
    assert set(jobs) == registry
    money = [t["labels"] for t in jobs["sv-money"]["static_configs"]]
    assert {labels["region"] for labels in money} == {"east", "west"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_use_the_provisioned_datasource_and_have_queries(path: Path) -> None:
    doc = json.loads(path.read_text())
    datasources = yaml.safe_load((OBS / "grafana/provisioning/datasources/edge.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    panels = [p for p in doc["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
    assert len({p["id"] for p in doc["panels"]}) == len(doc["panels"])


def test_every_service_gets_a_red_dashboard() -> None:
    names = {p.name for p in DASHBOARDS}
    for svc in _services():
        if svc["plane"] != "gateway":
            assert f"service-{svc['name']}.json" in names


def test_the_prometheus_operator_component_renders_pod_monitors_and_the_rules(
    tmp_path: Path,
) -> None:
    """An overlay of the base plus components/prometheus-operator, rendered by kubectl."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl renders the kustomize overlays (make test installs it)"
    k8s = ROOT / "deploy" / "k8s"
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "edge",
                "resources": [os.path.relpath(k8s / "base", overlay)],
                "components": [os.path.relpath(k8s / "components/prometheus-operator", overlay)],
            }
        )
    )
    proc = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PodMonitor"}
    assert set(monitors) == {"edge-services", "edge-gateway"}
    assert all(d["metadata"]["namespace"] == "edge" for d in monitors.values())
    gateway = monitors["edge-gateway"]["spec"]
    assert gateway["podMetricsEndpoints"][0]["port"] == "admin"
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    gw_pod = next(d for d in deployments if d["metadata"]["name"] == "gateway-api")
    ports = {
        p["name"] for c in gw_pod["spec"]["template"]["spec"]["containers"] for p in c["ports"]
    }
    assert "admin" in ports
    for d in deployments:
        if d["metadata"]["name"] == "gateway-api":
            continue
        labels = d["spec"]["template"]["metadata"]["labels"]
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", d["metadata"]["name"]
        assert any(
            p["name"] == "http" for p in d["spec"]["template"]["spec"]["containers"][0]["ports"]
        )
        assert "app.kubernetes.io/name" in labels
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    shipped = {
        r["alert"]
        for path in RULES
        for g in yaml.safe_load(path.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r} == (
        shipped
    )
