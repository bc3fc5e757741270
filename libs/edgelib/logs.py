"""Structured JSON logs that carry the current ``trace_id`` and ``request_id``."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final, TextIO

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


@lru_cache(maxsize=1024)
def is_secret_name(key: str) -> bool:
    """Whether an attribute called ``key`` holds a secret (asked once per name)."""
    lowered = key.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def redact(key: str, value: Any) -> Any:
    return "[redacted]" if is_secret_name(key) else value


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
        trace_id = getattr(record, "trace_id", None)
        span_id = getattr(record, "span_id", None)
        if not trace_id:
            current = trace.get_current_span().get_span_context()
            if current.is_valid:
                trace_id = format(current.trace_id, "032x")
                span_id = span_id or format(current.span_id, "016x")
        if trace_id:
            doc["trace_id"] = trace_id
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


#: At most this long between a line being logged and written (nginx's ``flush=``).
FLUSH_SECONDS: Final = 0.2
#: Or as soon as this much waits (nginx's ``buffer=``).
FLUSH_BYTES: Final = 64 * 1024


#: A pipe takes a write of up to this many bytes whole (POSIX PIPE_BUF on Linux): several
#: processes writing to one stdout (the gateway's workers) never split each other's lines.
ATOMIC_WRITE: Final = 4096


def _chunks(lines: list[str]) -> Iterator[str]:
    """The lines joined into writes of at most :data:`ATOMIC_WRITE` bytes (a longer line
    goes alone)."""
    chunk: list[str] = []
    size = 0
    for line in lines:
        length = len(line)
        if chunk and size + length > ATOMIC_WRITE:
            yield "".join(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += length
    if chunk:
        yield "".join(chunk)


class BufferedLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes formatted lines in batches instead of one write and flush per record.

    A line waits at most :data:`FLUSH_SECONDS` (a daemon thread writes what waits) or
    until :data:`FLUSH_BYTES` wait. Warnings and worse are written at once, with what
    waits before them, so the lines around a failure are out before it can end the
    process; ``logging.shutdown`` (at exit) writes the rest. A ``kill -9`` loses at most
    the last :data:`FLUSH_SECONDS` of info lines, as nginx's buffered access log does.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._size = 0
        self._waiting = threading.Event()
        self._closed = False
        self._writer = threading.Thread(target=self._write_later, name="log-lines", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle holds self.lock around this call.
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)
        self._size += len(line)
        if record.levelno >= logging.WARNING or self._size >= FLUSH_BYTES:
            self._write()
        elif not self._waiting.is_set():
            self._waiting.set()

    def _write(self) -> None:
        if not self._lines:
            return
        lines, self._lines, self._size = self._lines, [], 0
        try:
            for chunk in _chunks(lines):
                self.stream.write(chunk)
                self.stream.flush()
        except (OSError, ValueError):
            pass  # stdout closed or gone: the lines have nowhere to go

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def close(self) -> None:
        self.flush()
        self._closed = True
        self._waiting.set()  # the writer thread ends
        super().close()

    def _write_later(self) -> None:
        while not self._closed:
            self._waiting.wait()
            time.sleep(FLUSH_SECONDS)
            with self.lock:  # type: ignore[union-attr]
                self._waiting.clear()
                self._write()


def flush_logs() -> None:
    """Write every line the root logger's handlers still hold (a service stopping)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def configure_logging(
    *,
    service: str,
    instance: str,
    region: str | None,
    level: str = "INFO",
    json: bool = True,
) -> None:
    """Send every logger's records to stdout, as JSON lines unless ``json`` is false.

    Lines are written in batches (:class:`BufferedLineHandler`). Records do not look up
    their caller's file and line, thread, process or task (the JSON line has none of
    them): the logging HOWTO's "Optimization" settings, a fifth of a small request's cost.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BufferedLineHandler(sys.stdout)
    if json:
        handler.setFormatter(JsonFormatter(service, instance, region))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_edge_stdout", False):
            root.removeHandler(old)
            old.close()
    handler._edge_stdout = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own access log duplicates ours, without trace ids.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every call a service makes at INFO ("HTTP Request: GET <url> ..."): the
    # callee's access line already records it, with ids, and a URL's query is not the
    # log's to keep. edgelib.client logs failed calls itself; httpx's warnings still pass.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
