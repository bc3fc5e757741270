"""Traces through the real stack: one cross-region transfer is one trace.

The stack runs with OpenTelemetry's standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at an
OTLP/HTTP receiver in this test (aiohttp, decoding the protobuf export requests with
opentelemetry-proto). A transfer from east to west, sent with a ``traceparent`` of the
test's own, must come back as spans of the gateway, east's sv-money, west's sv-money and
west's sv-notice (the payee's notice, shipped later by the event publisher), all in that
one trace and chained parent to child. A request whose ``traceparent`` says "not sampled"
leaves no span anywhere (parent-based sampling).
"""

from __future__ import annotations

import secrets
import time

import httpx
import orjson
import pytest

from tests.e2e.accounts import admin, register
from tests.e2e.conftest import Stack
from tests.e2e.otlp import OtlpReceiver, ReceivedSpan

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture
def traced(observed_stack: Stack) -> Stack:
    """The observed stack (conftest): every span goes to the OTLP receiver within 0.2 s."""
    return observed_stack


@pytest.fixture
def receiver(otlp_receiver: OtlpReceiver) -> OtlpReceiver:
    return otlp_receiver


def _wait_for(
    receiver: OtlpReceiver, trace_id: str, services: set[tuple[str, str]], *, span: str = ""
) -> None:
    """Until spans of every (service, region) arrived, one of them named ``span...``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        spans = receiver.trace(trace_id)
        if services <= {(s.service, s.region) for s in spans} and any(
            s.name.startswith(span) for s in spans
        ):
            return
        time.sleep(0.2)


def test_a_cross_region_transfer_is_one_trace_from_the_gateway_to_the_payees_notice(
    traced: Stack, receiver: OtlpReceiver
) -> None:
    payer, payer_auth = register(traced, "east", "tp")
    payee, _ = register(traced, "west", "tq")
    topup = httpx.post(
        traced.public + "/api/v1/wallet/topups",
        json={"username": payer, "amount": 10_000, "currency": "USD"},
        headers=admin(traced) | {"idempotency-key": secrets.token_hex(8)},
        timeout=15,
    )
    assert topup.status_code == 201, topup.text

    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    paid = httpx.post(
        traced.public + "/api/v1/wallet/transfers",
        json={"to_username": payee, "amount": 1_250, "currency": "USD"},
        headers=payer_auth
        | {
            "idempotency-key": secrets.token_hex(8),
            "traceparent": f"00-{trace_id}-{client_span}-01",
        },
        timeout=15,
    )
    assert paid.status_code == 201, paid.text
    assert (paid.json()["status"], paid.json()["to_region"]) == ("completed", "west")

    expected = {
        ("gateway-api", ""),
        ("sv-money", "east"),
        ("sv-money", "west"),
        ("sv-notice", "west"),
    }
    # sv-notice's span comes last: the event is shipped after the transfer's answer.
    _wait_for(receiver, trace_id, expected, span="event wallet.transfer_received")
    spans = receiver.trace(trace_id)
    assert expected <= {(s.service, s.region) for s in spans}, spans

    # Parent to child: client -> gateway -> east sv-money -> west sv-money -> west sv-notice.
    by_id = {s.span_id: s for s in spans}

    def parent_of(span: ReceivedSpan) -> tuple[str, str] | str:
        parent = by_id.get(span.parent_span_id)
        if parent is None:
            return span.parent_span_id
        return parent.service, parent.region

    gateway = [s for s in spans if s.service == "gateway-api"]
    assert [s.parent_span_id for s in gateway] == [client_span]
    east = [s for s in spans if (s.service, s.region) == ("sv-money", "east")]
    assert any(parent_of(s) == ("gateway-api", "") for s in east), east
    west = [s for s in spans if (s.service, s.region) == ("sv-money", "west")]
    assert any(parent_of(s) == ("sv-money", "east") for s in west), west
    notice = [s for s in spans if s.service == "sv-notice"]
    assert any(
        parent_of(s) == ("sv-money", "west") and s.name.startswith("event ") for s in notice
    ), notice

    # The trace id is in the logs of the instances that handled it.
    # Log lines reach the file within edgelib.logs.FLUSH_SECONDS (written in batches).
    west_money = next(p.stem for p in (traced.var_dir / "log").glob("sv-money-west-*.log"))
    deadline = time.monotonic() + 5
    while True:
        lines = [
            orjson.loads(line) for line in traced.log_lines(west_money) if line.startswith("{")
        ]
        if any(line.get("trace_id") == trace_id for line in lines) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert any(line.get("trace_id") == trace_id for line in lines)


def test_a_request_its_caller_did_not_sample_leaves_no_span(
    traced: Stack, receiver: OtlpReceiver
) -> None:
    _payer, payer_auth = register(traced, "east", "tn")
    trace_id = secrets.token_hex(16)
    sampled_id = secrets.token_hex(16)
    for tid, flags in ((trace_id, "00"), (sampled_id, "01")):
        resp = httpx.get(
            traced.public + "/api/v1/wallet",
            headers=payer_auth | {"traceparent": f"00-{tid}-{secrets.token_hex(8)}-{flags}"},
            timeout=15,
        )
        assert resp.status_code == 200, resp.text
    # The sampled twin arrives; by then the unsampled one would have too.
    _wait_for(receiver, sampled_id, {("gateway-api", ""), ("sv-money", "east")})
    assert receiver.trace(sampled_id)
    time.sleep(0.5)
    assert receiver.trace(trace_id) == []
