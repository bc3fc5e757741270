"""edgelib.tracing: OpenTelemetry's standard settings, and no SDK span without an exporter."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from edgelib.events import PlatformEvent
from edgelib.logs import current_span_id, current_trace_id
from edgelib.tracing import (
    configure_tracing,
    install_trace_context,
    otlp_traces_endpoint,
    parse_traceparent,
    start_span,
    tracing_active,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://col:4318/"}, "http://col:4318/v1/traces"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://col:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:9/x",
            },
            "http://t:9/x",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://col:4318", "OTEL_SDK_DISABLED": "true"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://col:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
    ],
)
def test_the_standard_otel_variables_choose_the_endpoint(
    env: dict[str, str], expected: str | None
) -> None:
    assert otlp_traces_endpoint(env) == expected


def test_without_an_endpoint_no_sdk_provider_is_installed() -> None:
    assert configure_tracing(service="t", instance="t-1", region=None, endpoint=None) is None
    assert not tracing_active()
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    with start_span("work") as span:
        assert not span.is_recording()


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE_ID}-{PARENT}",  # too few parts
        f"ff-{TRACE_ID}-{PARENT}-01",  # forbidden version
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"00-{TRACE_ID[:-1]}g-{PARENT}-01",
        f"00-{TRACE_ID}-{PARENT}-1",
    ],
)
def test_a_malformed_traceparent_is_not_continued(value: str) -> None:
    assert parse_traceparent(value) is None


async def test_a_request_continues_the_callers_trace_with_a_span_id_of_its_own() -> None:
    seen: dict[str, str | None] = {}
    app = FastAPI()

    @app.get("/x")
    async def x() -> dict[str, str]:
        seen["trace"], seen["span"] = current_trace_id(), current_span_id()
        return {}

    install_trace_context(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.get("/x", headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-00"})
        assert seen["trace"] == TRACE_ID
        assert seen["span"] not in (None, PARENT)
        await client.get("/x")
        assert seen["trace"] not in (None, TRACE_ID)


def test_an_event_carries_the_trace_it_was_made_in() -> None:
    with start_span("request", parent=f"00-{TRACE_ID}-{PARENT}-01"):
        event = PlatformEvent(type="wallet.transfer_received", user_id="u", region="east")
    assert event.traceparent.split("-")[1] == TRACE_ID
    again = PlatformEvent.from_json(event.to_json())
    assert again.traceparent == event.traceparent
    outside = PlatformEvent(type="wallet.transfer_received", user_id="u", region="east")
    assert outside.traceparent == ""
    assert "traceparent" not in outside.to_json()
