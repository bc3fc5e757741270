"""Central logs on the real stack: every process ships to sv-log, even across its outages."""

from __future__ import annotations

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
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from tests.e2e.conftest import PORT_SHIFT, Stack, instance_id

pytestmark = pytest.mark.e2e

SV_LOG = f"http://127.0.0.1:{7105 + PORT_SHIFT}"
GATEWAY = ServiceSigner("gateway-api", DEV_SERVICE_SECRET)
OPERATOR = Identity("u-ops", "ops", "east", "s-ops", "web")


def logs(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Query sv-log as the gateway forwards an authorised ``logs:read`` caller."""
    url = httpx.URL("/api/v1/logs/records", params=params)
    target = url.raw_path.decode()
    headers = GATEWAY.sign("GET", target, None, identity=OPERATOR.encode())
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


def test_public_logs_api_is_refused_at_the_gateway_without_a_token(
    stack: Stack, client: httpx.Client
) -> None:
    resp = client.get(f"{stack.public}/api/v1/logs/records")
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"


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
    assert statistics.median(during) < baseline * 2 + 0.005, (baseline, statistics.median(during))

    # Every request made while sv-log was frozen shows up once it answers again.
    last = f"{tag}-{len(during) - 1}"
    wait_for(lambda: logs(client, request_id=last, service="gateway-api"), 40)
    first = logs(client, request_id=f"{tag}-0")
    assert {r["service"] for r in first} == {"gateway-api", "sv-user"}
    assert len([r for r in first if r["service"] == "gateway-api"]) == 1  # not stored twice

    metrics = client.get(f"http://127.0.0.1:{7201 + PORT_SHIFT}/metrics").text
    assert "edge_log_shipping_dropped_total" in metrics
    assert "edge_log_shipping_queue_depth" in metrics
