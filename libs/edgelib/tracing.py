"""OpenTelemetry set-up, the per-request trace context and W3C ``traceparent`` helpers.

Tracing follows OpenTelemetry's standard environment: ``OTEL_EXPORTER_OTLP_ENDPOINT``
(OTLP/HTTP base URL; ``/v1/traces`` is appended) or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
(the full URL) turns exporting on, and the SDK reads ``OTEL_TRACES_SAMPLER`` /
``OTEL_TRACES_SAMPLER_ARG`` itself (default ``parentbased_always_on``: a service follows
the sampled flag of the ``traceparent`` it receives).

Without an exporter no SDK span is ever created: an SDK span per request costs more than
the rest of a small request (doc/performance.md). :class:`TraceContextMiddleware` then
only continues the caller's trace ids (or makes new ones) and puts a non-recording span
in the context, so logs, problem documents and outgoing calls still carry the trace.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("edgelib.tracing")

_provider: TracerProvider | None = None
_tracer = trace.get_tracer("edgelib")
_random = random.Random()
_HEX = frozenset(b"0123456789abcdef")
#: Requests that never get a span of their own (probes and scrapes).
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def otlp_traces_endpoint(environ: Mapping[str, str] | None = None) -> str | None:
    """The OTLP/HTTP traces URL the standard ``OTEL_*`` variables name, or None (no export)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    full = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if full:
        return full
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if base:
        return base.rstrip("/") + "/v1/traces"
    return None


def configure_tracing(
    *, service: str, instance: str, region: str | None, endpoint: str | None
) -> TracerProvider | None:
    """Install an SDK tracer provider exporting over OTLP/HTTP to ``endpoint`` (a traces URL).

    Without an endpoint nothing is installed: the API's default provider makes only
    non-recording spans, so no SDK span exists anywhere in the process.
    """
    global _provider
    if _provider is not None or not endpoint:
        return _provider
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    attributes = {"service.name": service, "service.instance.id": instance}
    if region:
        attributes["edge.region"] = region
    # The sampler comes from OTEL_TRACES_SAMPLER(_ARG); parent-based by default.
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    _provider = provider
    logger.info("exporting traces", extra={"otlp_endpoint": endpoint})
    return provider


def tracing_active() -> bool:
    """True when SDK spans are recorded and exported in this process."""
    return _provider is not None


def shutdown_tracing() -> None:
    """Export what is buffered (the provider stays installed: OpenTelemetry sets it once)."""
    if _provider is not None:
        _provider.force_flush(5000)


def inject_trace_headers(headers: MutableMapping[str, str]) -> None:
    """Add ``traceparent``/``tracestate`` for the current span to outgoing headers."""
    propagate.inject(headers)


def current_traceparent() -> str:
    """The current span as a ``traceparent`` value ("" outside any trace)."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return ""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def parse_traceparent(value: bytes | str) -> SpanContext | None:
    """A remote span context from a W3C ``traceparent`` value, or None when malformed."""
    raw = value.encode() if isinstance(value, str) else value
    parts = raw.strip().lower().split(b"-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == b"ff" or len(parts[3]) != 2:
        return None
    version, trace_id, span_id, flags = parts[0], parts[1], parts[2], parts[3]
    if not (_HEX.issuperset(version) and _HEX.issuperset(flags)):
        return None
    if len(trace_id) != 32 or len(span_id) != 16:
        return None
    if not (_HEX.issuperset(trace_id) and _HEX.issuperset(span_id)):
        return None
    if trace_id.strip(b"0") == b"" or span_id.strip(b"0") == b"":
        return None
    return SpanContext(
        int(trace_id, 16),
        int(span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(flags, 16) & 1),
    )


def remote_parent(traceparent: bytes | str | None) -> otel_context.Context | None:
    """A context whose current span is the remote parent ``traceparent`` names."""
    if not traceparent:
        return None
    parent = parse_traceparent(traceparent)
    if parent is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(parent))


def start_span(
    name: str, *, parent: bytes | str | None = None, kind: SpanKind = SpanKind.INTERNAL
) -> Any:
    """A span (SDK when exporting, non-recording otherwise) under ``parent`` or the current one.

    Use as a context manager: ``with start_span("event", parent=tp): ...``. For work a
    background task does on behalf of a request that ended (queued events).
    """
    context = remote_parent(parent) if parent else None
    return _tracer.start_as_current_span(name, context=context, kind=kind)


def _route_name(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return f"{scope.get('method', '')} {path or scope.get('path', '')}"


class TraceContextMiddleware:
    """Makes each request's trace current: an SDK server span when exporting, ids otherwise.

    A valid incoming ``traceparent`` is continued (same trace id, the caller's span as
    parent); otherwise a new trace starts.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        traceparent: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"traceparent":
                traceparent = value
                break
        if _provider is None or scope.get("path", "") in QUIET_PATHS:
            await self._ids_only(traceparent, scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with _tracer.start_as_current_span(
            f"{scope.get('method', '')} {scope.get('path', '')}",
            context=remote_parent(traceparent),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": scope.get("method", "")},
        ) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                span.update_name(_route_name(scope))
                span.set_attribute("http.response.status_code", status)
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.set_attribute("http.route", route)
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)

    async def _ids_only(
        self, traceparent: bytes | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        parent = parse_traceparent(traceparent) if traceparent else None
        span_id = _random.getrandbits(64) or 1
        if parent is not None:
            span_context = SpanContext(
                parent.trace_id, span_id, is_remote=False, trace_flags=parent.trace_flags
            )
        else:
            span_context = SpanContext(
                _random.getrandbits(128) or 1,
                span_id,
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(span_context)))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)


def install_trace_context(app: Any) -> None:
    """Wrap a Starlette/FastAPI app's whole middleware stack in :class:`TraceContextMiddleware`.

    Outermost, around Starlette's own error middleware, so a 500 problem document and the
    error log written there still carry the request's trace id.
    """
    build = app.build_middleware_stack

    def build_traced() -> ASGIApp:
        return TraceContextMiddleware(build())

    app.build_middleware_stack = build_traced
