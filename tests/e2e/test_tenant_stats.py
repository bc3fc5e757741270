"""Traffic statistics on real processes (issue 19, must-show 3, and item 5).

A second gateway with two worker processes (``GATEWAY_WORKERS=2``, its own ports) runs
beside the stack's, over the stack's real auth-jwt, auth-rbac and sv-log (PostgreSQL
and Redis). Two apps of a fresh tenant call it on new connections (so both workers
serve them); every answer is tallied here by (app, route, status class). The stats API,
asked through the stack's gateway, must give exactly those counts, and the minute
series must add up to the hour. The same traffic shows in that gateway's ``/cluster``
(per tenant and app), its access lines carry tenant and app, and sv-log finds those
lines by tenant.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.accounts import admin
from tests.e2e.conftest import PORT_SHIFT, ROOT, Stack
from tests.worker import free_port

pytestmark = pytest.mark.e2e

#: Route labels (gateway_api.routing.table: methods or ``*``, then the path or prefix).
RBAC, LOGS = "* /api/v1/rbac", "* /api/v1/logs"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def two_worker_gateway(stack: Stack, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """``python -m gateway_api`` with two workers over the stack's services; yields its
    public and admin URLs and its output file."""
    public, admin_port = free_port(), free_port()
    env = dict(stack.env)
    env.update(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(public),
        GATEWAY_ADMIN_PORT=str(admin_port),
        GATEWAY_INSTANCE_ID="gateway-stats-e2e",
        GATEWAY_TOPOLOGY=str(stack.var_dir.parent / "topology.toml"),
        GATEWAY_WORKERS="2",
        GATEWAY_STATS_INTERVAL="0.5",
        EDGE_VAR_DIR=str(tmp_path / "var"),
        EDGE_SERVICE_KEYS_FILE=str(stack.var_dir / "keys" / "gateway-api.json"),
        EDGE_LOG_URL=f"http://127.0.0.1:{7105 + PORT_SHIFT}",
    )
    out = tmp_path / "gateway.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway_api"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    admin_url = f"http://127.0.0.1:{admin_port}"
    try:
        deadline = time.monotonic() + 120
        workers: list[Any] = []
        while len(workers) < 2:
            assert proc.poll() is None, out.read_text()[-3000:]
            assert time.monotonic() < deadline, f"workers: {workers}"
            try:
                workers = httpx.get(admin_url + "/cluster", timeout=5).json()["workers"]
            except (httpx.HTTPError, ValueError, KeyError):
                workers = []
            time.sleep(0.3)
        yield f"http://127.0.0.1:{public}", admin_url, out
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _app(api: httpx.Client, root: dict[str, str], tenant: str, name: str) -> tuple[str, str]:
    made = api.post("/api/v1/auth/apps", json={"name": name, "tenant": tenant}, headers=root)
    assert made.status_code == 201, made.text
    client_id, secret = made.json()["client_id"], made.json()["client_secret"]
    assign = {"user": client_id, "role": "robot", "dom": tenant}
    assert api.post("/api/v1/rbac/assignments", json=assign, headers=root).status_code == 201
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    token = api.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials"},
        headers={"authorization": f"Basic {raw}"},
    )
    assert token.status_code == 200, token.text
    return client_id, token.json()["access_token"]


def _class(status: int) -> str:
    return f"{status // 100}xx"


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.public, timeout=15) as client:
        yield client


@pytest.mark.parametrize("stack_flavour", ["postgres-redis"], indirect=True)
def test_stats_count_exactly_what_two_gateway_workers_answered(
    stack: Stack, two_worker_gateway: tuple[str, str, Path], api: httpx.Client
) -> None:
    gateway, gateway_admin, gateway_out = two_worker_gateway
    root = admin(stack)
    tenant = f"st{uuid.uuid4().hex[:8]}"
    assert (
        api.post("/api/v1/tenants", json={"id": tenant, "name": tenant}, headers=root).status_code
        == 201
    )
    assert (
        api.post(
            "/api/v1/rbac/roles", json={"name": "robot", "dom": tenant}, headers=root
        ).status_code
        == 201
    )
    grant = {"sub": "robot", "dom": tenant, "obj": "rbac", "act": "admin"}
    assert api.post("/api/v1/rbac/policies", json=grant, headers=root).status_code == 201
    apps = dict(_app(api, root, tenant, name) for name in ("billing", "reports"))
    first, second = apps

    sent: Counter[tuple[str, str, str]] = Counter()
    started = time.time()
    # A new connection per request: the kernel spreads them over both workers.
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=gateway, timeout=15, limits=limits) as client:

        def call(app: str, path: str, route: str, **params: str) -> int:
            resp = client.get(path, params=params, headers=bearer(apps[app]))
            sent[(app, route, _class(resp.status_code))] += 1
            return resp.status_code

        # Until the new role is in this gateway's policy (every try is counted too).
        deadline = time.monotonic() + 10
        while call(first, "/api/v1/rbac/roles", RBAC, dom=tenant) != 200:
            assert time.monotonic() < deadline, sent
            time.sleep(0.05)
        for _ in range(30):
            call(first, "/api/v1/rbac/roles", RBAC, dom=tenant)
        for _ in range(10):  # auth-rbac refuses another domain: 403 from the service
            call(first, "/api/v1/rbac/roles", RBAC, dom="default")
        for _ in range(6):  # no logs:read in the tenant: 403 at the gateway
            call(first, "/api/v1/logs/records", LOGS)
        for _ in range(20):
            call(second, "/api/v1/rbac/roles", RBAC, dom=tenant)
    assert sent[(first, RBAC, "2xx")] >= 31
    assert sent[(first, RBAC, "4xx")] >= 10
    assert sent[(first, LOGS, "4xx")] == 6
    assert sent[(second, RBAC, "2xx")] == 20

    window = {
        "tenant": tenant,
        "from": datetime.fromtimestamp(started - 120, UTC).isoformat(),
        "to": datetime.fromtimestamp(time.time() + 120, UTC).isoformat(),
    }

    def counted() -> Counter[tuple[str, str, str]]:
        got: Counter[tuple[str, str, str]] = Counter()
        for app in apps:
            for route in (RBAC, LOGS):
                resp = api.get(
                    "/api/v1/stats",
                    params={
                        **window,
                        "step": "minute",
                        "app": app,
                        "route": route,
                        "group_by": "status_class",
                    },
                    headers=root,
                )
                assert resp.status_code == 200, resp.text
                for series in resp.json()["series"]:
                    got[(app, route, series["group"]["status_class"])] += series["totals"][
                        "requests"
                    ]
        return got

    deadline = time.monotonic() + 30
    got = counted()
    while got != sent and time.monotonic() < deadline:
        time.sleep(0.5)
        got = counted()
    assert got == sent
    time.sleep(1.5)  # later flushes (and any resend) add nothing
    assert counted() == sent

    # The minutes add up to the hour, point by point and in total.
    minutes = api.get("/api/v1/stats", params={**window, "step": "minute"}, headers=root).json()
    hours = api.get("/api/v1/stats", params={**window, "step": "hour"}, headers=root).json()
    minute_points = minutes["series"][0]["points"]
    for hour in hours["series"][0]["points"]:
        start = datetime.fromisoformat(hour["start"]).timestamp()
        inside = [
            p for p in minute_points
            if start <= datetime.fromisoformat(p["start"]).timestamp() < start + 3600
        ]  # fmt: skip
        for field in ("requests", "errors_4xx", "errors_5xx"):
            assert sum(p[field] for p in inside) == hour[field]
    assert minutes["series"][0]["totals"]["requests"] == sum(sent.values())
    assert hours["series"][0]["totals"]["requests"] == sum(sent.values())
    assert hours["series"][0]["totals"]["errors_4xx"] == sum(
        n for (_app, _route, cls), n in sent.items() if cls == "4xx"
    )

    # Item 5: /cluster shows the tenant's traffic per app, added over both workers.
    cluster = api.get(gateway_admin + "/cluster").json()
    assert all(w["requests"] > 0 for w in cluster["workers"]), cluster["workers"]
    traffic = {(t["tenant"], t["app"]): t for t in cluster["traffic"]}
    assert traffic[(tenant, second)]["requests"] == 20
    assert traffic[(tenant, first)]["requests"] == sum(
        n for (app, _route, _cls), n in sent.items() if app == first
    )
    # Access lines carry the tenant and the app, and sv-log finds them by tenant.
    lines = [
        orjson.loads(line)
        for line in gateway_out.read_text().splitlines()
        if '"gateway.access"' in line
    ]
    mine = [line for line in lines if line.get("tenant") == tenant]
    assert {line["app"] for line in mine} == set(apps)
    deadline = time.monotonic() + 15
    while True:
        records = api.get(
            "/api/v1/logs/records", params={"tenant": tenant, "limit": 1000}, headers=root
        )
        assert records.status_code == 200, records.text
        items = records.json()["items"]
        if len(items) >= len(mine) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert items
    assert {i["tenant"] for i in items} == {tenant}
    # The gateway's access lines carry the app; auth-rbac's audit lines about the tenant
    # (created, its roles) carry the tenant only.
    assert {i["app"] for i in items if i["service"] == "gateway-api"} == set(apps)
