"""sv-log's rules: what a batch must look like, how pages and cursors work."""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from edgelib.backends import Backend, BackendError
from edgelib.logship import ShipError, ShipRejected, encode_batch
from edgelib.problems import Problem
from sv_log.exceptions import (
    BatchInProgress,
    BatchTooLarge,
    InvalidCursor,
    InvalidRecords,
    InvalidTimeRange,
    MalformedBatch,
    StoreUnavailable,
    UnsupportedBatchEncoding,
)
from sv_log.metrics import BATCHES, RECORDS_DROPPED, RECORDS_RECEIVED
from sv_log.schemas import IntakeAccepted, IntakeRecord, LogPage, LogRecordOut
from sv_log.store import LogFilter, LogStore, Position
from sv_log.tail import TailHub

_RECORDS = TypeAdapter(list[IntakeRecord])
_ERRORS_SHOWN = 20
#: How long an intake idempotency key is remembered (a retried batch is not stored twice).
DEDUP_SECONDS = 600
#: How long a key stays claimed by a send whose outcome is not known yet. A retry inside
#: this window gets 503 (try again), never "duplicate": only a stored batch is one.
PENDING_SECONDS = 30
_PENDING, _STORED = b"pending", b"stored"


@dataclass(frozen=True)
class IntakeLimits:
    max_batch_bytes: int
    max_batch_records: int
    max_record_bytes: int


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate one gzip member, refusing output beyond ``limit`` bytes (no gzip bombs)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise MalformedBatch(f"the gzip body is corrupt: {exc}") from exc
    if len(data) > limit or inflater.unconsumed_tail:
        raise BatchTooLarge(f"the batch inflates to more than {limit} bytes", limit=limit)
    if not inflater.eof or inflater.unused_data:
        raise MalformedBatch("the gzip body is truncated or has trailing data")
    return data


def read_json_batch(
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    max_bytes: int,
    key: str,
) -> list[Any]:
    """The array under ``key`` of a JSON batch (gzip or not), within ``max_bytes``
    inflated; the problem that fits otherwise. Log records and statistics rows alike."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise UnsupportedBatchEncoding("send the batch as application/json")
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "gzip":
        data = gunzip(body, max_bytes)
    elif encoding == "identity":
        data = body
        if len(data) > max_bytes:
            raise BatchTooLarge(f"the batch is over {max_bytes} bytes", limit=max_bytes)
    else:
        raise UnsupportedBatchEncoding(f"content encoding {encoding!r}: use gzip or none")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedBatch(f"the batch is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) != {key} or not isinstance(doc[key], list):
        raise MalformedBatch(f'a batch is an object with one key, "{key}", an array')
    rows: list[Any] = doc[key]
    return rows


class LogService:
    """Intake, query and tail over one :class:`LogStore`."""

    def __init__(
        self, store: LogStore, hub: TailHub, backend: Backend, limits: IntakeLimits
    ) -> None:
        self.store = store
        self.hub = hub
        self.backend = backend
        self.limits = limits

    def decode_batch(
        self, body: bytes, *, content_type: str | None, content_encoding: str | None
    ) -> list[IntakeRecord]:
        """Check a whole batch before anything is stored; raise the problem that fits."""
        try:
            return self._decode(body, content_type=content_type, content_encoding=content_encoding)
        except Problem:
            BATCHES.labels("refused").inc()
            raise

    def _decode(
        self, body: bytes, *, content_type: str | None, content_encoding: str | None
    ) -> list[IntakeRecord]:
        raw = read_json_batch(
            body,
            content_type=content_type,
            content_encoding=content_encoding,
            max_bytes=self.limits.max_batch_bytes,
            key="records",
        )
        if len(raw) > self.limits.max_batch_records:
            raise BatchTooLarge(
                f"{len(raw)} records; at most {self.limits.max_batch_records} per batch",
                limit=self.limits.max_batch_records,
            )
        too_big = [
            i for i, r in enumerate(raw) if len(orjson.dumps(r)) > self.limits.max_record_bytes
        ]
        if too_big:
            raise BatchTooLarge(
                f"{len(too_big)} records are over {self.limits.max_record_bytes} bytes",
                limit=self.limits.max_record_bytes,
                records=too_big[:_ERRORS_SHOWN],
            )
        try:
            return _RECORDS.validate_python(raw)
        except ValidationError as exc:
            errors = [
                {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_input=False)[:_ERRORS_SHOWN]
            ]
            raise InvalidRecords(
                f"{exc.error_count()} problems in the batch", errors=errors
            ) from None

    async def ingest(
        self, records: Sequence[IntakeRecord], *, idempotency_key: str | None = None
    ) -> IntakeAccepted:
        """Store a checked batch in one transaction, then offer it to live tails.

        With an idempotency key, the key is first claimed as *pending* and marked
        *stored* only after the commit. A resend answers "duplicate" only when the key
        says stored; while it says pending (the first send still running, or its outcome
        lost with a cache hiccup) the resend gets 503 and tries again. A batch that was
        acknowledged is therefore always in the store.
        """
        key = None
        if idempotency_key:
            key = f"sv-log:batch:{idempotency_key}"
            state = await self._claim(key)
            if state == _STORED:
                BATCHES.labels("duplicate").inc()
                return IntakeAccepted(accepted=0, duplicate=True)
            if state == _PENDING:
                BATCHES.labels("in_progress").inc()
                raise BatchInProgress(
                    "an earlier send of this batch is not settled; send it again shortly",
                    headers={"retry-after": "1"},
                )
        try:
            stored = await self.store.insert(records)
        except BaseException as exc:
            if key is not None:
                await self._forget(key)
            if isinstance(exc, StoreUnavailable):
                BATCHES.labels("unavailable").inc()
                RECORDS_DROPPED.inc(len(records))
            raise
        if key is not None:
            await self._settle(key)
        BATCHES.labels("stored").inc()
        RECORDS_RECEIVED.inc(len(stored))
        await self.hub.publish(stored)
        return IntakeAccepted(accepted=len(stored))

    async def _claim(self, key: str) -> bytes | None:
        """None when this send owns the key now; else what the key says."""
        try:
            for _ in range(3):
                if await self.backend.set(key, _PENDING, ttl=PENDING_SECONDS, only_if_absent=True):
                    return None
                state = await self.backend.get(key)
                if state is not None:
                    return state
                # expired between the two calls: claim it again
        except BackendError:
            pass
        return None  # better a rare duplicate than a lost batch

    async def _settle(self, key: str) -> None:
        try:
            await self.backend.set(key, _STORED, ttl=DEDUP_SECONDS)
        except BackendError:
            pass  # the pending claim expires: a resend after that is stored again

    async def _forget(self, key: str) -> None:
        try:
            await self.backend.delete(key)
        except BackendError:
            pass  # the pending claim expires in PENDING_SECONDS; resends get 503 until then

    async def query(
        self, flt: LogFilter, *, limit: int, cursor: str | None, newest_first: bool
    ) -> LogPage:
        """One page of matching records, and the cursor of the next page when there is one."""
        if flt.since is not None and flt.until is not None and flt.since >= flt.until:
            raise InvalidTimeRange("since must be before until")
        order = "desc" if newest_first else "asc"
        after = decode_cursor(cursor, order) if cursor else None
        rows = await self.store.query(flt, after=after, limit=limit + 1, newest_first=newest_first)
        more = len(rows) > limit
        items = rows[:limit]
        next_cursor = encode_cursor(items[-1], order) if more else None
        return LogPage(items=items, next_cursor=next_cursor)

    async def store_own(self, records: Sequence[bytes]) -> None:
        """Sink for sv-log's own log records: the same checks, then straight to the store."""
        try:
            batch = self.decode_batch(
                encode_batch(records), content_type="application/json", content_encoding=None
            )
            await self.ingest(batch)
        except StoreUnavailable as exc:
            raise ShipError(exc.detail) from exc
        except Problem as exc:
            raise ShipRejected(exc.detail) from exc


def encode_cursor(last: LogRecordOut, order: str) -> str:
    raw = orjson.dumps({"t": last.ts.isoformat(), "i": last.id, "o": order})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: str) -> Position:
    try:
        raw: Any = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        ts = datetime.fromisoformat(raw["t"])
        last_id = raw["i"]
        cursor_order = raw["o"]
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidCursor("the cursor is not one this service issued") from exc
    if not isinstance(last_id, str) or ts.tzinfo is None:
        raise InvalidCursor("the cursor is not one this service issued")
    if cursor_order != order:
        raise InvalidCursor(f"the cursor belongs to order={cursor_order}")
    if not last_id.isdigit() and len(last_id) != 24:
        raise InvalidCursor("the cursor is not one this service issued")
    return Position(ts=ts, id=last_id)
