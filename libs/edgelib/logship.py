"""Log shipping: every service's records go to sv-log in batches, off the request path.

A :class:`ShippingHandler` on the root logger turns each record into one JSON
document and puts it on a bounded in-memory queue; that is all a request ever pays.
A background task (:class:`LogShipper`) takes batches off the queue and hands them to
a sink, by default :class:`HttpSink` (a signed, gzipped ``POST /internal/logs``).

When the sink fails the batch is kept and retried with capped exponential backoff;
meanwhile the queue fills up to its bound and further records are dropped and
counted in ``edge_log_shipping_dropped_total``. The stdout JSON log is a separate
handler and never depends on any of this.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import queue
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from prometheus_client import Counter, Gauge

from edgelib.logs import current_request_id, current_span_id, current_trace_id, redact
from edgelib.signing import PeerSigner
from edgelib.tasks import cancel

logger = logging.getLogger("edgelib.logship")

INTAKE_PATH = "/internal/logs"

#: Records bigger than this (encoded) are cut down before shipping; sv-log allows 32 KiB.
MAX_RECORD_BYTES = 16 * 1024
#: A batch is cut once its records add up to this many bytes; sv-log allows 4 MiB.
MAX_BATCH_BYTES = 1024 * 1024
MAX_MESSAGE_CHARS = 8000

SHIPPED = Counter("edge_log_shipping_shipped", "Log records accepted by sv-log.")
DROPPED = Counter(
    "edge_log_shipping_dropped",
    "Log records that were never shipped (queue_full: sv-log slow or down; "
    "rejected: sv-log refused the batch; shutdown: still queued when the service stopped).",
    ["reason"],
)
QUEUED = Gauge("edge_log_shipping_queue_depth", "Log records waiting to be shipped.")
FAILURES = Counter("edge_log_shipping_failures", "Failed attempts to ship a batch.")
# Each reason's series exists from the start at 0, so the alert and the dashboard see a
# rate, not an absent series.
for _reason in ("queue_full", "rejected", "shutdown"):
    DROPPED.labels(reason=_reason)

# Records logged while the shipper itself is working (its HTTP client, its warnings)
# are written to stdout but never shipped, so shipping cannot feed itself.
_shipping: ContextVar[bool] = ContextVar("edge_log_shipping", default=False)

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
    "trace_id",
    "span_id",
    "request_id",
}
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
#: A tenant id or app client id, as sv-log's ``tenant``/``app`` fields take them.
_TENANT = re.compile(r"^[A-Za-z0-9_.@:\-]{1,128}$")
_LEVELS = {
    "DEBUG": "debug",
    "INFO": "info",
    "WARNING": "warning",
    "ERROR": "error",
    "CRITICAL": "critical",
}
_exception_formatter = logging.Formatter()


class ShipError(Exception):
    """The sink could not deliver a batch now; it is retried."""


class ShipRejected(Exception):
    """The sink refused a batch for good (malformed, too large, not allowed); it is dropped."""


Sink = Callable[[Sequence[bytes]], Awaitable[None]]
RecordFilter = Callable[[logging.LogRecord], bool]


def encode_batch(records: Sequence[bytes]) -> bytes:
    """The intake body for already-encoded records: ``{"records": [...]}``."""
    return b'{"records":[' + b",".join(records) + b"]}"


def _gzip_and_key(records: Sequence[bytes]) -> tuple[bytes, str]:
    # The key is the batch's digest, so a retry of the same batch (after a timeout that
    # sv-log may have survived) is recognised and not stored twice.
    raw = encode_batch(records)
    return gzip.compress(raw, 1), hashlib.sha256(raw).hexdigest()[:40]


class HttpSink:
    """Posts batches to sv-log's signed intake, gzipped, with the batch digest as its key."""

    def __init__(
        self,
        base_url: str,
        signer: PeerSigner,
        *,
        timeout: float = 5.0,
        connect_timeout: float = 2.0,
    ) -> None:
        self.url = base_url.rstrip("/") + INTAKE_PATH
        self.signer = signer
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, records: Sequence[bytes]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body, key = await asyncio.to_thread(_gzip_and_key, records)
        headers = {
            "content-type": "application/json",
            "content-encoding": "gzip",
            "idempotency-key": key,
            **self.signer.sign("POST", INTAKE_PATH, body),
        }
        try:
            async with self._session.post(self.url, data=body, headers=headers) as resp:
                status = resp.status
                detail = (await resp.read())[:300].decode("utf-8", "replace")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ShipError(f"{type(exc).__name__}: {exc}") from exc
        if status in (200, 202):
            return
        if status in (408, 429) or status >= 500:
            raise ShipError(f"sv-log answered {status}")
        raise ShipRejected(f"sv-log answered {status}: {detail}")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class ShippingHandler(logging.Handler):
    """Encodes each record as sv-log expects and queues it; never blocks, never raises."""

    def __init__(
        self,
        shipper: LogShipper,
        *,
        service: str,
        instance: str,
        region: str | None,
        record_filter: RecordFilter | None = None,
    ) -> None:
        super().__init__()
        self.shipper = shipper
        self._static: dict[str, str] = {"service": service, "instance": instance}
        if region:
            self._static["region"] = region
        self._filter = record_filter

    def emit(self, record: logging.LogRecord) -> None:
        if _shipping.get():
            return
        try:
            if self._filter is not None and not self._filter(record):
                return
            self.shipper.offer(self.encode(record))
        except Exception:
            self.handleError(record)

    def encode(self, record: logging.LogRecord) -> bytes:
        """One intake record: sanitised so that sv-log never refuses the batch over it."""
        message = record.getMessage()
        attributes: dict[str, Any] = {"logger": record.name}
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS]
            attributes["truncated"] = True
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": _LEVELS.get(record.levelname, _nearest_level(record.levelno)),
            "message": message,
            **self._static,
        }
        trace_id = getattr(record, "trace_id", None) or current_trace_id()
        if isinstance(trace_id, str) and _TRACE_ID.match(trace_id):
            doc["trace_id"] = trace_id
            span_id = getattr(record, "span_id", None) or current_span_id()
            if span_id:
                attributes["span_id"] = span_id
        request_id = getattr(record, "request_id", None) or current_request_id()
        if isinstance(request_id, str) and request_id:
            doc["request_id"] = request_id[:128]
        for key, value in record.__dict__.items():
            if key in ("tenant", "app") and isinstance(value, str) and _TENANT.match(value):
                doc[key] = value  # sv-log's own fields: records are queried by tenant
            elif key not in _RESERVED and key not in attributes:
                attributes[key] = redact(key, value)
        if record.exc_info:
            attributes["exception"] = _exception_formatter.formatException(record.exc_info)[
                -MAX_MESSAGE_CHARS:
            ]
        doc["attributes"] = attributes
        encoded = orjson.dumps(doc, default=str)
        if len(encoded) > MAX_RECORD_BYTES:
            # Keep the small attributes (ids, redaction markers), cut the big ones.
            kept = {
                key: value
                for key, value in attributes.items()
                if key != "exception" and len(orjson.dumps(value, default=str)) <= 256
            }
            kept["truncated"] = True
            kept["exception"] = str(attributes.get("exception", ""))[-2000:]
            doc["attributes"] = kept
            encoded = orjson.dumps(doc, default=str)
        if len(encoded) > MAX_RECORD_BYTES:
            doc["attributes"] = {
                "logger": record.name,
                "truncated": True,
                "exception": str(attributes.get("exception", ""))[-2000:],
            }
            encoded = orjson.dumps(doc, default=str)
        return encoded


def _nearest_level(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


class LogShipper:
    """A bounded queue of encoded records and the task that ships them in batches."""

    def __init__(
        self,
        sink: Sink,
        *,
        max_queue: int = 10_000,
        batch_size: int = 500,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        flush_interval: float = 0.5,
        backoff_start: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        if max_queue < 1 or batch_size < 1:
            raise ValueError("max_queue and batch_size must be positive")
        self.sink = sink
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.flush_interval = flush_interval
        self.backoff_start = backoff_start
        self.backoff_max = backoff_max
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=max_queue)
        self._batch: list[bytes] = []
        # A record that did not fit the byte bound of the last batch starts the next one.
        self._carry: bytes | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        #: Counters of this shipper alone (the Prometheus ones add up all shippers).
        self.shipped = 0
        self.dropped = 0
        self.failures = 0

    @property
    def max_queue(self) -> int:
        return self._queue.maxsize

    @property
    def pending(self) -> int:
        """Records queued or held in the batch being sent."""
        return self._queue.qsize() + len(self._batch) + (self._carry is not None)

    def offer(self, record: bytes) -> bool:
        """Queue one encoded record; when the queue is full drop it and count the drop."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            DROPPED.labels(reason="queue_full").inc()
            return False
        return True

    def handler(
        self,
        *,
        service: str,
        instance: str,
        region: str | None,
        record_filter: RecordFilter | None = None,
    ) -> ShippingHandler:
        return ShippingHandler(
            self, service=service, instance=instance, region=region, record_filter=record_filter
        )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="edge-log-shipper")

    async def stop(self, *, flush_timeout: float = 2.0) -> None:
        """Stop the task, then make one bounded attempt to ship what is left."""
        task, self._task = self._task, None
        await cancel(task)
        token = _shipping.set(True)
        try:
            async with asyncio.timeout(flush_timeout):
                while self.pending and await self._send_next():
                    pass
        except Exception:  # timed out, or sv-log is down: what is left is lost
            pass
        finally:
            _shipping.reset(token)
        left = self.pending
        if left:
            self.dropped += left
            DROPPED.labels(reason="shutdown").inc(left)
        QUEUED.set(self._queue.qsize())
        closer = getattr(self.sink, "aclose", None)
        if closer is not None:
            await closer()

    @asynccontextmanager
    async def installed(
        self,
        *,
        service: str,
        instance: str,
        region: str | None,
        record_filter: RecordFilter | None = None,
        logger_name: str = "",
    ) -> AsyncIterator[LogShipper]:
        """Attach a handler to ``logger_name`` (root by default) and ship until exit."""
        handler = self.handler(
            service=service, instance=instance, region=region, record_filter=record_filter
        )
        target = logging.getLogger(logger_name)
        target.addHandler(handler)
        self.start()
        try:
            yield self
        finally:
            target.removeHandler(handler)
            await self.stop()

    def _take(self) -> None:
        """Fill the current batch from the queue, up to its count and byte bounds."""
        if self._carry is not None:
            self._batch.append(self._carry)
            self._carry = None
        size = sum(len(r) for r in self._batch)
        while len(self._batch) < self.batch_size:
            try:
                record = self._queue.get_nowait()
            except queue.Empty:
                break
            if self._batch and size + len(record) > self.max_batch_bytes:
                self._carry = record
                break
            self._batch.append(record)
            size += len(record)

    async def _send_next(self) -> bool:
        """Send one batch; True when it left the queue (shipped or refused for good)."""
        if not self._batch:
            self._take()
        if not self._batch:
            return False
        try:
            await self.sink(self._batch)
        except ShipRejected as exc:
            count = len(self._batch)
            self._batch = []
            self.dropped += count
            DROPPED.labels(reason="rejected").inc(count)
            logger.warning(
                "log batch refused by sv-log", extra={"records": count, "error": str(exc)}
            )
            return True
        except Exception as exc:
            self.failures += 1
            FAILURES.inc()
            if not self._failing:
                self._failing = True
                logger.warning(
                    "log shipping failing; retrying with backoff",
                    extra={"error": str(exc) or type(exc).__name__, "pending": self.pending},
                )
            raise
        count = len(self._batch)
        self._batch = []
        self.shipped += count
        SHIPPED.inc(count)
        if self._failing:
            self._failing = False
            logger.info("log shipping resumed", extra={"dropped_total": self.dropped})
        return True

    async def _run(self) -> None:
        _shipping.set(True)
        backoff = self.backoff_start
        while True:
            QUEUED.set(self._queue.qsize())
            if not self._batch and self._queue.qsize() < self.batch_size:
                await asyncio.sleep(self.flush_interval)
            try:
                await self._send_next()
            except Exception:
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.backoff_max)
            else:
                backoff = self.backoff_start
