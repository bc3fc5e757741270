"""The MongoDB log store, through PyMongo's native async API (``AsyncMongoClient``).

Chosen when sv-log's database URL is ``mongodb://…`` (the database name comes from
the URL's path, ``edge_logs`` when it has none). Timestamps are kept to the
millisecond, as BSON dates are. Text search is a case-insensitive match of every
word, like the SQLite store.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.errors import PyMongoError

from sv_log.exceptions import InvalidCursor, StoreUnavailable
from sv_log.schemas import IntakeRecord, LogRecordOut
from sv_log.store import LogFilter, Position

COLLECTION = "log_records"
DEFAULT_DATABASE = "edge_logs"
_INT64 = (-(2**63), 2**63 - 1)


def _millis(ts: datetime) -> datetime:
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def _bson_safe(value: Any) -> Any:
    """Attributes as BSON accepts them: no ``$``/``.``/NUL in keys, 64-bit integers."""
    if isinstance(value, dict):
        return {re.sub(r"^\$|[.\x00]", "_", str(k)) or "_": _bson_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bson_safe(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    return value


class MongoLogStore:
    """Log records in one collection, indexed for time order, service and trace id."""

    def __init__(self, url: str, *, server_timeout_ms: int = 3000) -> None:
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, tz_aware=True, serverSelectionTimeoutMS=server_timeout_ms
        )
        self.collection = self.client.get_default_database(DEFAULT_DATABASE)[COLLECTION]

    async def prepare(self) -> None:
        try:
            await self.collection.create_index([("ts", DESCENDING)])
            await self.collection.create_index([("service", ASCENDING), ("ts", DESCENDING)])
            await self.collection.create_index([("trace_id", ASCENDING)])
            await self.collection.create_index([("request_id", ASCENDING)])
            await self.collection.create_index([("tenant", ASCENDING), ("ts", DESCENDING)])
        except PyMongoError as exc:
            raise StoreUnavailable("MongoDB did not create the log indexes") from exc

    async def insert(self, records: Sequence[IntakeRecord]) -> list[LogRecordOut]:
        if not records:
            return []
        docs = []
        for record in records:
            doc = record.model_dump()
            doc["ts"] = _millis(record.ts)
            if record.attributes is not None:
                doc["attributes"] = _bson_safe(record.attributes)
            docs.append(doc)
        try:
            result = await self.collection.insert_many(docs, ordered=True)
        except PyMongoError as exc:
            raise StoreUnavailable("MongoDB did not accept the batch") from exc
        out = []
        for oid, doc in zip(result.inserted_ids, docs, strict=True):
            doc.pop("_id", None)
            out.append(LogRecordOut(id=str(oid), **doc))
        return out

    def _filter(self, flt: LogFilter) -> dict[str, Any]:
        query: dict[str, Any] = {}
        ts: dict[str, datetime] = {}
        if flt.since is not None:
            ts["$gte"] = flt.since
        if flt.until is not None:
            ts["$lt"] = flt.until
        if ts:
            query["ts"] = ts
        for name, values in (
            ("service", flt.services),
            ("region", flt.regions),
            ("tenant", flt.tenants),
            ("app", flt.apps),
            ("level", flt.levels),
        ):
            if values:
                query[name] = {"$in": list(values)}
        if flt.trace_id is not None:
            query["trace_id"] = flt.trace_id
        if flt.request_id is not None:
            query["request_id"] = flt.request_id
        if flt.words:
            query["$and"] = [
                {"message": {"$regex": re.escape(w), "$options": "i"}} for w in flt.words
            ]
        return query

    async def query(
        self, flt: LogFilter, *, after: Position | None, limit: int, newest_first: bool
    ) -> list[LogRecordOut]:
        query = self._filter(flt)
        if after is not None:
            try:
                last_id = ObjectId(after.id)
            except (InvalidId, TypeError) as exc:
                raise InvalidCursor("the cursor does not belong to this store") from exc
            op = "$lt" if newest_first else "$gt"
            keyset = {"$or": [{"ts": {op: after.ts}}, {"ts": after.ts, "_id": {op: last_id}}]}
            query = {"$and": [query, keyset]} if query else keyset
        direction = DESCENDING if newest_first else ASCENDING
        try:
            cursor = (
                self.collection.find(query)
                .sort([("ts", direction), ("_id", direction)])
                .limit(limit)
            )
            docs = [doc async for doc in cursor]
        except PyMongoError as exc:
            raise StoreUnavailable("MongoDB did not answer") from exc
        return [_record(doc) for doc in docs]

    async def delete_older(
        self, cutoff: datetime, *, services: Sequence[str] = (), exclude: Sequence[str] = ()
    ) -> int:
        query: dict[str, Any] = {"ts": {"$lt": cutoff}}
        service: dict[str, list[str]] = {}
        if services:
            service["$in"] = list(services)
        if exclude:
            service["$nin"] = list(exclude)
        if service:
            query["service"] = service
        try:
            result = await self.collection.delete_many(query)
        except PyMongoError as exc:
            raise StoreUnavailable("MongoDB did not delete old records") from exc
        return result.deleted_count

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def close(self) -> None:
        await self.client.close()


def _record(doc: dict[str, Any]) -> LogRecordOut:
    ts: datetime = doc["ts"]
    return LogRecordOut(
        id=str(doc["_id"]),
        ts=ts.astimezone(UTC),
        service=doc["service"],
        instance=doc.get("instance"),
        region=doc.get("region"),
        level=doc["level"],
        message=doc["message"],
        trace_id=doc.get("trace_id"),
        request_id=doc.get("request_id"),
        attributes=doc.get("attributes"),
        tenant=doc.get("tenant"),
        app=doc.get("app"),
    )
