"""Quotas on the real stack with two gateway processes and Redis (issue 19, must-show 1).

The stack (``postgres-redis``) runs one gateway; the test starts a second
``python -m gateway_api`` on the same topology, keys and Redis. A platform admin makes
a tenant and an app, gives the app a QPS quota of 10 through the public API, and both
gateways enforce it within a second. Then the app is driven at 30 req/s through both
gateways (alternating) for 10 s: 100 ± 5 requests pass, the rest are 429 problem+json
with ``Retry-After`` and the ``RateLimit-Policy`` / ``RateLimit`` fields.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.accounts import admin
from tests.e2e.conftest import ROOT, Stack
from tests.e2e.test_tenants import bearer, client_token
from tests.worker import free_port

logger = logging.getLogger("tests.e2e.quotas")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture
def second_gateway(stack: Stack, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Another gateway process beside the stack's: (public URL, admin URL)."""
    public, admin_port = free_port(), free_port()
    env = dict(stack.env)
    env.update(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(public),
        GATEWAY_ADMIN_PORT=str(admin_port),
        GATEWAY_INSTANCE_ID="gateway-api-2",
        GATEWAY_TOPOLOGY=str(stack.var_dir.parent / "topology.toml"),
        EDGE_VAR_DIR=str(stack.var_dir),
        EDGE_LOG_URL="",
        EDGE_SERVICE_KEYS_FILE=str(stack.var_dir / "keys" / "gateway-api.json"),
        PYTHONPATH=str(ROOT),
    )
    log = (tmp_path / "gateway-2.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway_api"], cwd=ROOT, env=env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log.close()
    admin_url = f"http://127.0.0.1:{admin_port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(admin_url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "gateway-2.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the second gateway never got ready"
            time.sleep(0.3)
        yield f"http://127.0.0.1:{public}", admin_url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def quota_version(admin_url: str) -> int:
    return int(httpx.get(admin_url + "/cluster", timeout=5).json()["quotas"]["version"])


async def drive(urls: list[str], path: str, headers: dict[str, str], rate: float,
                seconds: float) -> list[httpx.Response]:  # fmt: skip
    """``rate`` requests per second for ``seconds``, round robin over ``urls``, each
    sent on schedule whatever the earlier ones are doing."""
    async with httpx.AsyncClient(timeout=15) as client:
        start = time.monotonic()
        tasks = []
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            url = urls[i % len(urls)]
            tasks.append(asyncio.create_task(client.get(url + path, headers=headers)))
        return list(await asyncio.gather(*tasks))


# Quotas shared by two gateways need the shared Redis: the postgres-redis stack only.
@pytest.mark.parametrize("stack_flavour", ["postgres-redis"], indirect=True)
def test_app_qps_10_at_30_per_second_through_two_gateways(
    stack: Stack, second_gateway: tuple[str, str]
) -> None:
    with httpx.Client(base_url=stack.public, timeout=15) as api:
        statuses = run_qps_test(stack, api, second_gateway)
    logger.info("quota e2e: answers by status %s", dict(statuses))


def run_qps_test(stack: Stack, api: httpx.Client, second_gateway: tuple[str, str]) -> Counter[int]:
    root = admin(stack)
    tenant = f"tq{uuid.uuid4().hex[:8]}"
    assert api.post("/api/v1/tenants", json={"id": tenant, "name": tenant},
                    headers=root).status_code == 201  # fmt: skip
    app = api.post("/api/v1/auth/apps", json={"name": "robot", "tenant": tenant}, headers=root)
    assert app.status_code == 201, app.text
    client_id, secret = app.json()["client_id"], app.json()["client_secret"]
    for path, body in (
        ("/api/v1/rbac/roles", {"name": "robot", "dom": tenant}),
        ("/api/v1/rbac/policies", {"sub": "robot", "dom": tenant, "obj": "rbac", "act": "admin"}),
        ("/api/v1/rbac/assignments", {"user": client_id, "role": "robot", "dom": tenant}),
    ):
        assert api.post(path, json=body, headers=root).status_code == 201
    token = client_token(stack, client_id, secret)
    assert token.status_code == 200, token.text
    as_app = bearer(token.json()["access_token"])
    second_public, second_admin = second_gateway
    roles = f"/api/v1/rbac/roles?dom={tenant}"
    deadline = time.monotonic() + 10
    while api.get(roles, headers=as_app).status_code != 200:  # the role reached the gateway
        assert time.monotonic() < deadline
        time.sleep(0.1)

    # The quota, set through the public API, is in force on both gateways within 1 s.
    bad = api.put("/api/v1/quotas", json={"kind": "app", "target": client_id, "qps": -1},
                  headers=root)  # fmt: skip
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    quota = {"kind": "app", "target": client_id, "tenant": tenant, "qps": 10}
    put = api.put("/api/v1/quotas", json=quota, headers=root)
    assert put.status_code == 201, put.text
    set_at = time.monotonic()
    version = api.get("/api/v1/quotas", headers=root).json()["version"]
    while min(quota_version(stack.admin), quota_version(second_admin)) < version:
        assert time.monotonic() - set_at < 1.0, "the quota did not reach both gateways in 1 s"
        time.sleep(0.02)
    time.sleep(1.0)  # what the checks above spent of the bucket comes back

    answers = asyncio.run(drive([stack.public, second_public], roles, as_app, 30, 10))
    statuses = Counter(r.status_code for r in answers)
    assert set(statuses) == {200, 429}, statuses
    assert 95 <= statuses[200] <= 105, statuses
    # Both gateways admitted a share: one limit, not one per gateway.
    by_gateway = Counter(str(r.url).startswith(stack.public) for r in answers
                         if r.status_code == 200)  # fmt: skip
    assert by_gateway[True] > 20, by_gateway
    assert by_gateway[False] > 20, by_gateway
    for refused in (r for r in answers if r.status_code == 429):
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("/quota-exceeded")
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["ratelimit-policy"] == '"app-qps";q=10;w=1'
        assert refused.headers["ratelimit"] == '"app-qps";r=0;t=1'
    return statuses
