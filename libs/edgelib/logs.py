"""Structured JSON logs that carry the current ``trace_id`` and ``request_id``."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import trace

_request_id: ContextVar[str | None] = ContextVar("edge_request_id", default=None)

#: Attributes of a stdlib ``LogRecord`` that are not user extras.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}

#: Substrings of attribute names whose values are never written to a log.
SECRET_MARKERS = ("password", "secret", "token", "authorization", "cookie", "signature")


def set_request_id(value: str | None) -> object:
    """Bind the request id to the current context; returns a token for reset."""
    return _request_id.set(value)


def reset_request_id(token: object) -> None:
    _request_id.reset(token)  # type: ignore[arg-type]


def current_request_id() -> str | None:
    return _request_id.get()


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x")


def current_span_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.span_id, "016x")


def redact(key: str, value: Any) -> Any:
    lowered = key.lower()
    if any(marker in lowered for marker in SECRET_MARKERS):
        return "[redacted]"
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line, stamped with service identity and trace ids."""

    def __init__(self, service: str, instance: str, region: str | None) -> None:
        super().__init__()
        self._static = {"service": service, "instance": instance}
        if region:
            self._static["region"] = region

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **self._static,
        }
        trace_id = getattr(record, "trace_id", None) or current_trace_id()
        if trace_id:
            doc["trace_id"] = trace_id
            span_id = getattr(record, "span_id", None) or current_span_id()
            if span_id:
                doc["span_id"] = span_id
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            doc["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in doc:
                doc[key] = redact(key, value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure_logging(
    *,
    service: str,
    instance: str,
    region: str | None,
    level: str = "INFO",
    json: bool = True,
) -> None:
    """Send every logger's records to stdout, as JSON lines unless ``json`` is false."""
    handler = logging.StreamHandler(sys.stdout)
    if json:
        handler.setFormatter(JsonFormatter(service, instance, region))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_edge_stdout", False):
            root.removeHandler(old)
    handler._edge_stdout = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own access log duplicates ours, without trace ids.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
