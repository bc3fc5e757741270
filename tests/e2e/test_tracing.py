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

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.accounts import admin, register
from tests.e2e.conftest import Stack, Stacks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    region: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str


class OtlpReceiver:
    """An OTLP/HTTP traces endpoint (``POST /v1/traces``, protobuf) on a thread of its own."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.url = ""
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _export(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        received = []
        for resource_spans in export.resource_spans:
            attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            service=attrs.get("service.name", ""),
                            region=attrs.get("edge.region", ""),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                        )
                    )
        with self._lock:
            self.spans.extend(received)
        return web.Response(body=b"", content_type="application/x-protobuf")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._export)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._runner = runner
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver()
    r.start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def traced(stacks: Stacks, receiver: OtlpReceiver) -> Iterator[Stack]:
    """A local stack exporting every span to ``receiver`` (exported within 0.2 s)."""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    try:
        yield stacks.get("traced", env)
    finally:
        stacks.stop("traced")


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
    west_money = next(p.stem for p in (traced.var_dir / "log").glob("sv-money-west-*.log"))
    lines = [orjson.loads(line) for line in traced.log_lines(west_money) if line.startswith("{")]
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
