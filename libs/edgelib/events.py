"""Platform events: a service tells sv-notice that something happened to a user.

The sender never waits for sv-notice. :meth:`EventPublisher.publish` is a plain
(non-async) call that puts the event on an in-memory queue and returns; a
background task per region ships batches with a signed ``POST /internal/events``
to the sv-notice of the user's region, retrying with exponential backoff and
jitter until it is accepted. When an event must survive the sender crashing,
write it with :class:`SqlEventOutbox` in the same transaction as the change it
reports; its relay ships it after the commit.

Delivery is at least once. sv-notice de-duplicates by event ``id``, so give an
event an id derived from what it reports (``transfer-received:<transfer id>``)
and a repeat makes no second notice.

Event types sv-notice knows (the type is a notice category):

- ``wallet.transfer_received``: ``amount``, ``currency``, ``from_username``,
  ``transfer_id`` (strings), optional ``note``;
- ``security.new_sign_in``: ``client_type``, ``signed_in_at`` (ISO 8601),
  optional ``ip``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, delete, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from edgelib.client import ServiceCallError, ServiceClient
from edgelib.db import Database
from edgelib.signing import ServiceSigner
from edgelib.tracing import current_traceparent

logger = logging.getLogger("edgelib.events")

EVENTS_PATH = "/internal/events"
TRANSFER_RECEIVED = "wallet.transfer_received"
NEW_SIGN_IN = "security.new_sign_in"


@dataclass(frozen=True, slots=True)
class PlatformEvent:
    """Something that happened to ``user_id``, who lives in ``region``."""

    type: str
    user_id: str
    region: str
    data: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    occurred_at: float = field(default_factory=time.time)
    source: str = ""
    #: The trace the event belongs to (W3C ``traceparent`` of the span that made it), so
    #: the receiver's work joins the request's trace although it is shipped later.
    traceparent: str = field(default_factory=current_traceparent)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "user_id": self.user_id,
            "region": self.region,
            "data": dict(self.data),
            "occurred_at": self.occurred_at,
            "source": self.source,
        }
        if self.traceparent:
            doc["traceparent"] = self.traceparent
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PlatformEvent:
        return cls(
            type=str(doc["type"]),
            user_id=str(doc["user_id"]),
            region=str(doc["region"]),
            data=dict(doc.get("data") or {}),
            id=str(doc["id"]),
            occurred_at=float(doc.get("occurred_at") or time.time()),
            source=str(doc.get("source") or ""),
            traceparent=str(doc.get("traceparent") or ""),
        )


class EventDeliveryError(Exception):
    """A batch was not delivered; ``permanent`` ones are dropped instead of retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class EventSink(Protocol):
    async def deliver(self, region: str, events: Sequence[PlatformEvent]) -> None: ...

    async def aclose(self) -> None: ...


def region_urls(value: Mapping[str, str | Sequence[str]]) -> dict[str, list[str]]:
    """``{"east": "http://a,http://b"}`` as lists of base URLs per region."""
    out: dict[str, list[str]] = {}
    for region, urls in value.items():
        items = urls.split(",") if isinstance(urls, str) else list(urls)
        cleaned = [u.strip() for u in items if u.strip()]
        if cleaned:
            out[region] = cleaned
    return out


class HttpEventSink:
    """Signed ``POST /internal/events`` to the sv-notice of each region."""

    def __init__(
        self,
        urls: Mapping[str, str | Sequence[str]],
        signer: ServiceSigner,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._clients = {
            region: ServiceClient(
                base, signer=signer.to("sv-notice"), timeout=timeout, transport=transport
            )
            for region, base in region_urls(urls).items()
        }

    async def deliver(self, region: str, events: Sequence[PlatformEvent]) -> None:
        client = self._clients.get(region)
        if client is None:
            raise EventDeliveryError(f"no sv-notice URL for region {region!r}", permanent=True)
        try:
            response = await client.post(
                EVENTS_PATH, json={"events": [e.to_json() for e in events]}
            )
        except ServiceCallError as exc:
            raise EventDeliveryError(f"sv-notice of {region} unreachable: {exc}") from exc
        status = response.status_code
        if status in (200, 202):
            for result in response.json().get("results", []):
                if result.get("status") == "rejected":
                    logger.warning(
                        "event rejected by sv-notice",
                        extra={"event_id": result.get("id"), "reason": result.get("reason")},
                    )
            return
        permanent = 400 <= status < 500 and status not in (408, 425, 429)
        raise EventDeliveryError(f"sv-notice of {region} answered {status}", permanent=permanent)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


class Backoff:
    """Exponential backoff with equal jitter: the n-th wait is in [d/2, d], d = base * 2^n."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap

    def delay(self, failures: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** max(0, failures - 1))
        return random.uniform(ceiling / 2, ceiling)


class EventPublisher:
    """Queues events in memory and ships them in the background; ``publish`` never blocks.

    Events wait in the process: a crash loses what is still queued (use
    :class:`SqlEventOutbox` where that matters). Beyond ``max_queue`` waiting
    events, new ones are dropped and counted.
    """

    def __init__(
        self,
        sink: EventSink,
        *,
        max_queue: int = 10_000,
        batch_size: int = 100,
        backoff: float = 0.2,
        max_backoff: float = 30.0,
    ) -> None:
        self.sink = sink
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.backoff = Backoff(backoff, max_backoff)
        self._queues: dict[str, asyncio.Queue[PlatformEvent]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._waiting = 0
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self.published = 0
        self.delivered = 0
        self.dropped = 0

    def publish(self, event: PlatformEvent) -> bool:
        """Queue ``event``; False when it was dropped (queue full or publisher closed)."""
        if self._closed or self._waiting >= self.max_queue:
            self.dropped += 1
            logger.warning("event dropped", extra={"event_id": event.id, "type": event.type})
            return False
        queue = self._queues.get(event.region)
        if queue is None:
            queue = self._queues[event.region] = asyncio.Queue()
            self._tasks[event.region] = asyncio.get_running_loop().create_task(
                self._ship(event.region, queue)
            )
        queue.put_nowait(event)
        self._waiting += 1
        self._idle.clear()
        self.published += 1
        return True

    @property
    def waiting(self) -> int:
        return self._waiting

    async def _ship(self, region: str, queue: asyncio.Queue[PlatformEvent]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self.batch_size and not queue.empty():
                batch.append(queue.get_nowait())
            failures = 0
            while True:
                try:
                    await self.sink.deliver(region, batch)
                    self.delivered += len(batch)
                    break
                except Exception as exc:
                    if isinstance(exc, EventDeliveryError) and exc.permanent:
                        self.dropped += len(batch)
                        logger.error(
                            "events dropped: %s", exc, extra={"region": region, "count": len(batch)}
                        )
                        break
                    failures += 1
                    delay = self.backoff.delay(failures)
                    logger.warning(
                        "event delivery failed; retrying",
                        extra={"region": region, "error": str(exc), "retry_in": round(delay, 3)},
                    )
                    await asyncio.sleep(delay)
            self._waiting -= len(batch)
            if self._waiting == 0:
                self._idle.set()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event is delivered or dropped; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def start(self) -> None:
        self._closed = False

    async def close(self, timeout: float = 5.0) -> None:
        """Stop taking events, give the queued ones ``timeout`` seconds, then stop."""
        self._closed = True
        if not await self.flush(timeout):
            logger.warning("events still queued at shutdown", extra={"count": self._waiting})
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.sink.aclose()

    async def __aenter__(self) -> EventPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


OUTBOX_TABLE = "event_outbox"


def outbox_columns() -> list[Column[Any]]:
    """Columns of the outbox table, for a migration: ``op.create_table(OUTBOX_TABLE, *cols)``."""
    return [
        Column("id", String(64), primary_key=True),
        Column("region", String(64), nullable=False),
        Column("payload", Text(), nullable=False),
        Column("created_at", Float(), nullable=False),
        Column("attempts", Integer(), nullable=False, default=0),
        Column("next_attempt_at", Float(), nullable=False, index=True),
    ]


class SqlEventOutbox:
    """Events stored in the sender's database, in the sender's transaction, then relayed.

    :meth:`add` inserts the event in the caller's session; nothing leaves before
    that transaction commits, and nothing is lost if the process dies after it.
    A relay task ships due rows in batches and deletes them once sv-notice has
    them. Several instances may relay one outbox: sv-notice drops repeats by id.
    """

    def __init__(
        self,
        database: Database,
        sink: EventSink,
        *,
        table: str = OUTBOX_TABLE,
        poll_interval: float = 1.0,
        batch_size: int = 100,
        backoff: float = 0.5,
        max_backoff: float = 60.0,
    ) -> None:
        self.database = database
        self.sink = sink
        self.table = Table(table, MetaData(), *outbox_columns())
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.backoff = Backoff(backoff, max_backoff)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def add(self, db: AsyncSession | AsyncConnection, event: PlatformEvent) -> None:
        """Write ``event`` in ``db``'s open transaction; the relay ships it after the commit.

        With a session the relay is woken when it commits; with a connection call
        :meth:`wake` after committing, or the relay finds the row at its next poll.
        """
        now = time.time()
        await db.execute(
            self.table.insert().values(
                id=event.id,
                region=event.region,
                payload=orjson.dumps(event.to_json()).decode(),
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        )
        if isinstance(db, AsyncSession):
            sync = db.sync_session
            if not sync.info.get(self._hook_key):
                sync.info[self._hook_key] = True
                sa_event.listen(sync, "after_commit", self._committed)

    @property
    def _hook_key(self) -> str:
        return f"edgelib.events.outbox.{id(self)}"

    def _committed(self, _session: Any) -> None:
        self._wake.set()

    def wake(self) -> None:
        """Ship now rather than at the next poll (call after committing an :meth:`add`)."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Ship the due rows once; returns how many left the outbox."""
        now = time.time()
        async with self.database.sessions() as session:
            rows = (
                await session.execute(
                    select(self.table)
                    .where(self.table.c.next_attempt_at <= now)
                    .order_by(self.table.c.created_at)
                    .limit(self.batch_size)
                )
            ).all()
        by_region: dict[str, list[Any]] = {}
        for row in rows:
            by_region.setdefault(row.region, []).append(row)
        done = 0
        for region, group in by_region.items():
            events = [PlatformEvent.from_json(orjson.loads(r.payload)) for r in group]
            ids = [r.id for r in group]
            try:
                await self.sink.deliver(region, events)
            except EventDeliveryError as exc:
                if not exc.permanent:
                    await self._postpone(group)
                    logger.warning(
                        "outbox relay failed; retrying", extra={"region": region, "error": str(exc)}
                    )
                    continue
                logger.error("outbox events dropped: %s", exc, extra={"count": len(ids)})
            async with self.database.sessions() as session, session.begin():
                await session.execute(delete(self.table).where(self.table.c.id.in_(ids)))
            done += len(ids)
        return done

    async def _postpone(self, rows: Sequence[Any]) -> None:
        now = time.time()
        async with self.database.sessions() as session, session.begin():
            for row in rows:
                await session.execute(
                    update(self.table)
                    .where(self.table.c.id == row.id)
                    .values(
                        attempts=row.attempts + 1,
                        next_attempt_at=now + self.backoff.delay(row.attempts + 1),
                    )
                )

    async def _run(self) -> None:
        while True:
            try:
                shipped = await self.relay_once()
            except Exception:
                logger.exception("outbox relay crashed; retrying")
                shipped = 0
            if shipped >= self.batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            self._wake.clear()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.sink.aclose()

    async def __aenter__(self) -> SqlEventOutbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
