"""A real Prometheus scrapes the local stack under mixed traffic; every dashboard panel has data.

The stack is started the way ``make observe`` starts it (``EDGE_OBSERVE=1 edgectl up``):
Debian's Prometheus runs as one more supervised process, scraping this stack's (shifted)
topology every 2 s with deploy/observability's alert rules. For about 60 s the test sends
mixed traffic through the gateway: registrations, good and bad logins, wallet reads,
same- and cross-region transfers, holds, notices, log queries, unknown paths. Then every
PromQL target of every dashboard in deploy/observability/grafana/dashboards (gateway.json
too when it is there) is evaluated through Prometheus's HTTP API, and each must return
data. A query over yesterday (``offset 1d``) is evaluated a day ahead, where "yesterday"
is this run.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.accounts import PASSWORD, admin, login, register
from tests.e2e.conftest import PORT_SHIFT, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "observability" / "grafana" / "dashboards"
PROMETHEUS = f"http://127.0.0.1:{9090 + PORT_SHIFT}"
TRAFFIC_SECONDS = 60.0


@pytest.fixture
def observed(observed_stack: Stack) -> Stack:
    """The observed stack (conftest): Prometheus scrapes it every 2 s."""
    return observed_stack


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) of every target of every shipped dashboard."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        doc = json.loads(path.read_text())
        panels = list(doc.get("panels", []))
        while panels:
            panel = panels.pop(0)
            panels += panel.get("panels", [])  # collapsed rows hold theirs
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append((path.name, panel.get("title", ""), target["expr"]))
    return out


def mixed_traffic(stack: Stack, seconds: float) -> dict[str, int]:
    """Requests of every kind through the gateway for ``seconds``; counts by status class."""
    statuses: dict[str, int] = {}
    boss = admin(stack)
    east = [register(stack, "east", "oe") for _ in range(2)]
    west = [register(stack, "west", "ow") for _ in range(2)]
    with httpx.Client(base_url=stack.public, timeout=15) as c:

        def call(method: str, path: str, **kw: Any) -> httpx.Response:
            resp = c.request(method, path, **kw)
            key = f"{resp.status_code // 100}xx"
            statuses[key] = statuses.get(key, 0) + 1
            return resp

        def key() -> dict[str, str]:
            return {"idempotency-key": secrets.token_hex(8)}

        for name, _ in east:
            made = call(
                "POST",
                "/api/v1/wallet/topups",
                json={"username": name, "amount": 10**9, "currency": "USD"},
                headers=boss | key(),
            )
            assert made.status_code == 201, made.text
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            i += 1
            payer = east[i % 2][1]
            call("GET", "/api/v1/wallet", headers=payer)
            for to in (east[(i + 1) % 2][0], west[i % 2][0]):  # same region, then across
                call(
                    "POST",
                    "/api/v1/wallet/transfers",
                    json={"to_username": to, "amount": 100, "currency": "USD"},
                    headers=payer | key(),
                )
            hold = call(
                "POST",
                "/api/v1/wallet/holds",
                json={"to_username": west[0][0], "amount": 50, "currency": "USD"},
                headers=payer | key(),
            )
            if hold.status_code == 201:
                call("POST", f"/api/v1/wallet/holds/{hold.json()['id']}/void", headers=payer)
            call("GET", "/api/v1/notices", headers=west[i % 2][1])
            call("GET", "/api/v1/users/me", headers=west[i % 2][1])
            call(
                "POST",
                "/api/v1/auth/login",
                json={"username": east[0][0], "password": "wrong-" + PASSWORD},
            )
            if i % 5 == 0:
                login(stack, east[0][0], PASSWORD)
                call("GET", "/api/v1/logs/records", params={"limit": 5}, headers=boss)
                call("GET", "/api/v1/config/namespaces", headers=boss)
                call("GET", "/api/v1/nothing-here")
                call("POST", "/api/v1/wallet/transfers", json={"amount": "x"}, headers=payer)
            time.sleep(0.05)
    return statuses


def query(client: httpx.Client, expr: str, at: float) -> list[Any]:
    resp = client.get(f"{PROMETHEUS}/api/v1/query", params={"query": expr, "time": at})
    assert resp.status_code == 200, f"{expr}: {resp.text}"
    data = resp.json()["data"]
    if data["resultType"] == "scalar":
        return [data["result"]]
    result: list[Any] = data["result"]
    return result


def test_every_panel_of_every_dashboard_has_data_after_a_minute_of_traffic(
    observed: Stack,
) -> None:
    queries = panel_queries()
    assert len(queries) > 40, "dashboards missing"
    started = time.time()
    statuses = mixed_traffic(observed, TRAFFIC_SECONDS)
    assert statuses.get("2xx", 0) > 100
    assert statuses.get("4xx", 0) > 10
    with httpx.Client(timeout=10) as client:
        # The last scrapes of the traffic are in (2 s interval).
        time.sleep(5)
        targets = client.get(f"{PROMETHEUS}/api/v1/targets").json()["data"]["activeTargets"]
        down = [t["labels"]["instance_id"] for t in targets if t["health"] != "up"]
        assert targets
        assert down == []
        rules = client.get(f"{PROMETHEUS}/api/v1/rules").json()["data"]["groups"]
        assert {g["name"] for g in rules} >= {"edge-availability", "edge-wallet"}
        now = time.time()
        empty = []
        for dashboard, title, expr in queries:
            at = now + 86400 if "offset 1d" in expr else now
            if not query(client, expr, at):
                empty.append(f"{dashboard} / {title}: {expr}")
    assert empty == [], f"{len(empty)} of {len(queries)} panel queries returned no data:\n" + (
        "\n".join(empty)
    )
    assert time.time() - started >= TRAFFIC_SECONDS
