"""Central logs on the real stack: every process ships to sv-log, even across its outages."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import statistics
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from edgelib.identity import Identity
from edgelib.signing import PeerSigner
from tests.e2e.conftest import PORT_SHIFT, Stack, instance_id

pytestmark = pytest.mark.e2e

SV_LOG = f"http://127.0.0.1:{7105 + PORT_SHIFT}"
#: The stack's signers (its keyrings are written by edgectl at start), set per test.
SIGNERS: dict[str, PeerSigner] = {}


@pytest.fixture(autouse=True)
def _stack_signers(stack: Stack) -> None:
    SIGNERS["gateway"] = stack.signer("gateway-api").to("sv-log")
    SIGNERS["auth-jwt"] = stack.signer("auth-jwt").to("auth-rbac")
    # sv-log checks logs:read itself, at auth-rbac: the operator these tests act as holds it.
    with httpx.Client(timeout=10) as client:
        _assign(client, OPERATOR.user_id)


AUTH_RBAC = f"http://127.0.0.1:{7103 + PORT_SHIFT}"
OPERATOR = Identity("u-ops", "ops", "east", "s-ops", "web")
PASSWORD = "correct-horse-battery-9"


def logs(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Query sv-log as the gateway forwards an authorised ``logs:read`` caller."""
    url = httpx.URL("/api/v1/logs/records", params=params)
    target = url.raw_path.decode()
    headers = SIGNERS["gateway"].sign("GET", target, None, identity=OPERATOR.encode())
    resp = client.get(SV_LOG + target, headers=headers)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


def wait_for(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.25)


def test_request_through_gateway_is_found_by_trace_id_with_gateway_and_sv_user_in_order(
    stack: Stack, client: httpx.Client
) -> None:
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    resp = client.get(f"{stack.public}/api/v1/users/about", headers={"traceparent": traceparent})
    assert resp.status_code == 200

    def both_arrived() -> list[dict[str, Any]] | None:
        records = logs(client, trace_id=trace_id, order="asc")
        services = {r["service"] for r in records}
        return records if {"gateway-api", "sv-user"} <= services else None

    records = wait_for(both_arrived, 15)
    assert all(r["trace_id"] == trace_id for r in records)
    stamps = [datetime.fromisoformat(r["ts"]) for r in records]
    assert stamps == sorted(stamps)
    access = {r["service"]: r for r in records if r["message"] == "GET /api/v1/users/about 200"}
    assert set(access) == {"gateway-api", "sv-user"}

    # Each access line is written when its request ends (which of the two ends first is a
    # race between processes), and carries its duration: the gateway's request began first.
    def began(record: dict[str, Any]) -> datetime:
        ended = datetime.fromisoformat(record["ts"])
        return ended - timedelta(milliseconds=record["attributes"]["duration_ms"])

    assert began(access["gateway-api"]) <= began(access["sv-user"])
    assert next(r for r in records if r["service"] == "sv-user")["region"] == "east"


def _login(stack: Stack, client: httpx.Client, username: str, password: str) -> dict[str, str]:
    resp = client.post(
        stack.public + "/api/v1/auth/login",
        json={"username": username, "password": password, "client_type": "web"},
    )
    assert resp.status_code == 200, resp.text
    return {"authorization": f"Bearer {resp.json()['access_token']}"}


def _grant_admin(client: httpx.Client, headers: dict[str, str]) -> None:
    """Give the bootstrap admin its role (idempotent; auth-jwt's bootstrap may already have)."""
    payload = headers["authorization"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    _assign(client, claims["sub"])


def _assign(client: httpx.Client, user_id: str) -> None:
    """``admin`` for ``user_id``, assigned as auth-jwt assigns the bootstrap admin's."""
    body = json.dumps({"user": user_id, "role": "admin"}).encode()
    signed = SIGNERS["auth-jwt"].sign("POST", "/internal/assignments", body)
    resp = client.post(
        AUTH_RBAC + "/internal/assignments",
        content=body,
        headers={"content-type": "application/json", **signed},
    )
    assert resp.status_code in (200, 201), resp.text


def test_logs_api_through_the_gateway_needs_the_logs_read_permission(
    stack: Stack, client: httpx.Client
) -> None:
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    assert client.get(f"{stack.public}/api/v1/users/about", headers={"traceparent": traceparent})
    url = f"{stack.public}/api/v1/logs/records?trace_id={trace_id}&order=asc"

    anonymous = client.get(url)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"

    username = f"plain{uuid.uuid4().hex[:10]}"
    created = client.post(
        stack.public + "/api/v1/users", json={"username": username, "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    plain = client.get(url, headers=_login(stack, client, username, PASSWORD))
    assert plain.status_code == 403
    assert "logs:read" in plain.json()["detail"]

    admin = _login(stack, client, "admin", (stack.var_dir / "admin-password").read_text().strip())
    _grant_admin(client, admin)

    def found() -> list[dict[str, Any]] | None:
        resp = client.get(url, headers=admin)
        if resp.status_code != 200:
            return None
        items = resp.json()["items"]
        return items if {"gateway-api", "sv-user"} <= {r["service"] for r in items} else None

    items = wait_for(found, 15)
    assert all(r["trace_id"] == trace_id for r in items)


def _timed_requests(client: httpx.Client, url: str, seconds: float, tag: str) -> list[float]:
    times: list[float] = []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        resp = client.get(url, headers={"x-request-id": f"{tag}-{i}"})
        times.append(time.perf_counter() - started)
        assert resp.status_code == 200
        i += 1
    return times


def test_services_keep_serving_while_sv_log_is_frozen_and_their_records_arrive_after(
    stack: Stack, client: httpx.Client
) -> None:
    url = f"{stack.public}/api/v1/users/about"
    tag = f"frozen-{uuid.uuid4().hex[:8]}"
    baseline = statistics.median(_timed_requests(client, url, 1.5, f"{tag}-before"))
    sv_log_pid = stack.pid(instance_id("sv-log", 7105))
    os.kill(sv_log_pid, signal.SIGSTOP)  # up but not answering: the harder kind of down
    try:
        during = _timed_requests(client, url, 6.0, tag)
    finally:
        os.kill(sv_log_pid, signal.SIGCONT)
    # Full speed: no request waits on sv-log (its timeouts are seconds long), and the
    # median stays near the one before (loosely: the machine is shared).
    assert sorted(during)[int(len(during) * 0.9)] < 1.0
    assert statistics.median(during) < baseline * 3 + 0.010, (baseline, statistics.median(during))

    # Every request made while sv-log was frozen shows up once it answers again.
    last = f"{tag}-{len(during) - 1}"
    wait_for(lambda: logs(client, request_id=last, service="gateway-api"), 40)
    # Each service's shipper retries on its own backoff: sv-user's records may come a
    # little after the gateway's last one.
    wait_for(
        lambda: (
            {r["service"] for r in logs(client, request_id=f"{tag}-0")}
            == {"gateway-api", "sv-user"}
        ),
        40,
    )
    first = logs(client, request_id=f"{tag}-0")
    assert {r["service"] for r in first} == {"gateway-api", "sv-user"}
    assert len([r for r in first if r["service"] == "gateway-api"]) == 1  # not stored twice

    metrics = client.get(f"http://127.0.0.1:{7201 + PORT_SHIFT}/metrics").text
    assert "edge_log_shipping_dropped_total" in metrics
    assert "edge_log_shipping_queue_depth" in metrics
