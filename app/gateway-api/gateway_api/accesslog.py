"""The gateway's access log: one JSON line per request, at a fraction of logging's cost.

The line has the same shape as every other log line of the platform
(:class:`edgelib.logs.JsonFormatter`: ``ts``, ``level``, ``logger``, ``message``,
``service``, ``instance``, ``trace_id``, ``span_id``, ``request_id``, then the
request's fields). Going through :mod:`logging` costs a ``LogRecord``, a caller
lookup, the formatter's generic attribute walk and a flush per line, about as much as
forwarding the request (doc/performance.md); here the line is encoded with one
``orjson.dumps`` and lines are written in batches (every 50 ms, or at 64 KiB). When
the service ships its logs to sv-log, the same record is offered to the shipper.
With plain-text logs configured, or the ``gateway.access`` logger turned off, it
falls back to (or follows) the logging module.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any, Final

import orjson

logger = logging.getLogger("gateway.access")

FLUSH_SECONDS: Final = 0.05
FLUSH_BYTES: Final = 64 * 1024


class AccessLog:
    def __init__(self, *, service: str, instance: str, region: str | None) -> None:
        self._static: dict[str, str] = {"service": service, "instance": instance}
        if region:
            self._static["region"] = region
        self._lines: list[bytes] = []
        self._size = 0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._stamp_ms = -1
        self._stamp = ""
        self._shipper: Any = None
        self._direct = False
        self._configured = False

    def _configure(self) -> None:
        """Look at the logging set-up once it exists (it is made in the lifespan)."""
        self._configured = True
        root = logging.getLogger()
        json_stdout = any(
            getattr(h, "_edge_stdout", False) and type(h.formatter).__name__ == "JsonFormatter"
            for h in root.handlers
        )
        self._direct = json_stdout and logger.isEnabledFor(logging.INFO)
        for handler in root.handlers:
            shipper = getattr(handler, "shipper", None)
            if shipper is not None and hasattr(shipper, "offer"):
                self._shipper = shipper
        if self._direct:
            # Access lines are written here; other loggers keep the usual handlers.
            logger.propagate = False

    def _timestamp(self, now: float) -> str:
        ms = int(now * 1000)
        if ms != self._stamp_ms:
            self._stamp_ms = ms
            self._stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
        return self._stamp

    def request(
        self,
        *,
        method: str,
        path: str,
        status: int,
        upstream: str | None,
        duration_ms: float,
        trace_id: str,
        span_id: str,
        request_id: str,
        tenant: str | None = None,
        app: str | None = None,
    ) -> None:
        if not self._configured:
            self._configure()
        message = f"{method} {path} {status}"
        if not self._direct:
            logger.info(
                message,
                extra={
                    "trace_id": trace_id,
                    "span_id": span_id,
                    "request_id": request_id,
                    "method": method,
                    "path": path,
                    "status": status,
                    "upstream": upstream,
                    "duration_ms": duration_ms,
                    "tenant": tenant,
                    "app": app,
                },
            )
            return
        now = time.time()
        doc = {
            "ts": self._timestamp(now),
            "level": "info",
            "logger": "gateway.access",
            "message": message,
            **self._static,
            "trace_id": trace_id,
            "span_id": span_id,
            "request_id": request_id,
            "method": method,
            "path": path,
            "status": status,
            "upstream": upstream,
            "duration_ms": duration_ms,
            "tenant": tenant,
            "app": app,
        }
        line = orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE)
        self._lines.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
        if self._shipper is not None:
            self._ship(doc, now)

    def _ship(self, doc: dict[str, Any], now: float) -> None:
        attributes = {
            k: doc[k] for k in ("logger", "span_id", "method", "path", "status", "upstream")
        }
        attributes["duration_ms"] = doc["duration_ms"]
        record = {
            "ts": datetime.fromtimestamp(now, UTC).isoformat(),
            "level": "info",
            "message": doc["message"],
            **self._static,
            "trace_id": doc["trace_id"],
            "request_id": doc["request_id"][:128],
            "attributes": attributes,
        }
        # sv-log's own fields, so records are found by tenant (``?tenant=``).
        if doc["tenant"] is not None:
            record["tenant"] = doc["tenant"]
        if doc["app"] is not None:
            record["app"] = doc["app"]
        try:
            self._shipper.offer(orjson.dumps(record))
        except Exception:  # the shipper never blocks a request; a bad one is dropped
            self._shipper = None

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._lines:
            return
        data = b"".join(self._lines)
        self._lines.clear()
        self._size = 0
        try:
            out = sys.stdout.buffer
            out.write(data)
            out.flush()
        except (OSError, ValueError, AttributeError):
            pass
