"""W3C trace context for one gateway request, without the cost of an SDK span.

The gateway continues the caller's trace (or starts one), gives its own hop a new
span id, and passes ``traceparent`` on. An OpenTelemetry SDK span per request costs
more than the rest of the request path together (measured: doc/performance.md), so
when no OTLP endpoint is configured, which is when spans would be dropped anyway, the
gateway only makes the ids and puts a non-recording span in the OpenTelemetry context,
so that logs (``trace_id``), problem documents and outgoing calls made while handling
the request still carry the trace. With an endpoint configured a real server span is
started and exported.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

_HEX: Final = frozenset(b"0123456789abcdef")
_tracer = trace.get_tracer("gateway-api")
_random: Final = random.Random()


def random_hex(nbytes: int) -> str:
    """``nbytes`` random bytes as lowercase hex: trace, span and request ids.

    Unique, not secret: no OS entropy per request; ``bytes.hex()`` costs half of
    ``format(n, "032x")``.
    """
    return _random.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()


def _valid_hex(value: bytes, length: int) -> bool:
    return len(value) == length and _HEX.issuperset(value) and value.strip(b"0") != b""


class TraceContext:
    """The trace id, this hop's span id and the sampled flag of one request."""

    __slots__ = ("_span", "_token", "flags", "parent_span_id", "span_id", "trace_id")

    #: Set at start-up: start (and export) SDK spans instead of bare ids.
    record_spans: ClassVar[bool] = False

    def __init__(self, trace_id: str, span_id: str, flags: str, parent_span_id: str | None):
        self.trace_id = trace_id
        self.span_id = span_id
        self.flags = flags
        self.parent_span_id = parent_span_id
        self._span: Any = None
        self._token: object = None

    @classmethod
    def continued(cls, headers: list[tuple[bytes, bytes]]) -> TraceContext:
        """Continue the ``traceparent`` the client sent, or start a new trace."""
        for name, value in headers:
            if name == b"traceparent":
                parts = value.strip().lower().split(b"-")
                if (
                    len(parts) >= 4
                    and parts[0] != b"ff"
                    and len(parts[0]) == 2
                    and _HEX.issuperset(parts[0])
                    and _valid_hex(parts[1], 32)
                    and _valid_hex(parts[2], 16)
                    and len(parts[3]) == 2
                    and _HEX.issuperset(parts[3])
                ):
                    return cls(
                        parts[1].decode(),
                        random_hex(8),
                        parts[3].decode(),
                        parts[2].decode(),
                    )
                break
        ids = random_hex(24)  # one draw for both ids
        return cls(ids[:32], ids[32:], "01", None)

    def traceparent(self) -> bytes:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}".encode()

    def attach(self) -> None:
        """Make this the current span for the code handling the request (once).

        Cheap, but not free: the proxy attaches only when something may read it (an SDK
        span being recorded, a non-public route's checks, a problem document).
        """
        if self._token is not None:
            return
        flags = TraceFlags(int(self.flags, 16) & 1)
        if not self.record_spans:
            span_context = SpanContext(
                int(self.trace_id, 16), int(self.span_id, 16), is_remote=False, trace_flags=flags
            )
            self._token = otel_context.attach(
                trace.set_span_in_context(NonRecordingSpan(span_context))
            )
            return
        parent = None
        if self.parent_span_id is not None:
            remote = SpanContext(
                int(self.trace_id, 16), int(self.parent_span_id, 16), True, trace_flags=flags
            )
            parent = trace.set_span_in_context(NonRecordingSpan(remote))
        self._span = _tracer.start_span("gateway", context=parent, kind=SpanKind.SERVER)
        ctx = self._span.get_span_context()
        self.trace_id = format(ctx.trace_id, "032x")
        self.span_id = format(ctx.span_id, "016x")
        self.flags = format(int(ctx.trace_flags), "02x")
        self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def detach(self) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        if self._span is not None:
            self._span.end()
            self._span = None
