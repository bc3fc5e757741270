"""OpenTelemetry set-up and W3C ``traceparent`` propagation helpers."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

logger = logging.getLogger("edgelib.tracing")

_provider: TracerProvider | None = None


def configure_tracing(
    *, service: str, instance: str, region: str | None, otlp_endpoint: str | None
) -> TracerProvider:
    """Install an SDK tracer provider; export over OTLP/HTTP when an endpoint is given.

    Without an endpoint spans are still created (so trace ids exist and propagate)
    but are not exported.
    """
    global _provider
    if _provider is not None:
        return _provider
    attributes = {"service.name": service, "service.instance.id": instance}
    if region:
        attributes["edge.region"] = region
    provider = TracerProvider(resource=Resource.create(attributes))
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        logger.info("exporting traces", extra={"otlp_endpoint": otlp_endpoint})
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    global _provider
    if _provider is not None:
        _provider.shutdown()


def inject_trace_headers(headers: MutableMapping[str, str]) -> None:
    """Add ``traceparent``/``tracestate`` for the current span to outgoing headers."""
    propagate.inject(headers)
