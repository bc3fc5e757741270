"""The event contract senders use (``edgelib.events``): never blocking, retried, durable."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import MetaData, Table, func, select, text

from edgelib.db import Database
from edgelib.events import (
    EVENTS_PATH,
    OUTBOX_TABLE,
    Backoff,
    EventDeliveryError,
    EventPublisher,
    HttpEventSink,
    PlatformEvent,
    SqlEventOutbox,
    outbox_columns,
)
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from tests.conftest import PG_URL

SIGNER = ServiceSigner("sv-money", DEV_SERVICE_SECRET)


class FlakySink:
    """Fails the first ``failures`` deliveries to east, then keeps what it is given."""

    def __init__(self, failures: int = 0, *, permanent: bool = False) -> None:
        self.failures = failures
        self.permanent = permanent
        self.batches: list[tuple[str, list[str]]] = []
        self.attempts = 0
        self.attempt_times: list[float] = []

    async def deliver(self, region: str, events: Sequence[PlatformEvent]) -> None:
        self.attempts += 1
        if region == "east":
            self.attempt_times.append(time.monotonic())
        if self.failures and region == "east":
            self.failures -= 1
            raise EventDeliveryError("sv-notice down", permanent=self.permanent)
        self.batches.append((region, [e.id for e in events]))

    async def aclose(self) -> None:
        return None

    @property
    def delivered(self) -> list[str]:
        return [i for _, ids in self.batches for i in ids]


def _event(region: str = "east", **fields: object) -> PlatformEvent:
    return PlatformEvent(
        type="wallet.transfer_received",
        user_id="u-1",
        region=region,
        data={"amount": "1"},
        **fields,  # type: ignore[arg-type]
    )


async def test_publish_never_blocks_and_retries_with_backoff_until_delivered() -> None:
    sink = FlakySink(failures=3)
    async with EventPublisher(sink, backoff=0.02, max_backoff=0.5) as publisher:
        started = time.perf_counter()
        events = [_event() for _ in range(5)] + [_event("west")]
        assert all(publisher.publish(e) for e in events)
        assert time.perf_counter() - started < 0.05  # queued, not sent
        assert await publisher.flush(5)
    assert sorted(sink.delivered) == sorted(e.id for e in events)
    east = [i for region, ids in sink.batches if region == "east" for i in ids]
    assert east == [e.id for e in events[:5]]  # in order
    gaps = [b - a for a, b in zip(sink.attempt_times, sink.attempt_times[1:4], strict=False)]
    # Each wait is at least half its doubling ceiling (a busy machine only adds to it).
    assert all(gap >= 0.02 * 2**i / 2 for i, gap in enumerate(gaps)), gaps
    assert publisher.delivered == 6


async def test_permanent_failures_and_overflow_drop_events_and_count_them() -> None:
    sink = FlakySink(failures=1, permanent=True)
    async with EventPublisher(sink, max_queue=2) as publisher:
        assert publisher.publish(_event())
        assert publisher.publish(_event())
        assert not publisher.publish(_event())  # over max_queue
        assert await publisher.flush(5)
    # One over max_queue, and the batch of two that sv-notice refused for good.
    assert publisher.dropped == 3
    assert sink.delivered == []


async def test_http_sink_posts_signed_batches_and_classifies_answers() -> None:
    answers = iter([202, 503, 422])
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = next(answers)
        return httpx.Response(status, json={"results": []})

    sink = HttpEventSink(
        {"east": "http://notice-east"}, SIGNER, transport=httpx.MockTransport(handler)
    )
    event = _event()
    await sink.deliver("east", [event])
    request = seen[0]
    assert request.url.path == EVENTS_PATH
    assert orjson.loads(request.content)["events"][0]["id"] == event.id
    notice = ServiceSigner("sv-notice", DEV_SERVICE_SECRET)
    assert notice.verify("POST", EVENTS_PATH, request.headers, request.content) == "sv-money"
    with pytest.raises(EventDeliveryError) as transient:
        await sink.deliver("east", [event])
    assert not transient.value.permanent
    with pytest.raises(EventDeliveryError) as permanent:
        await sink.deliver("east", [event])
    assert permanent.value.permanent
    with pytest.raises(EventDeliveryError) as no_region:
        await sink.deliver("mars", [event])
    assert no_region.value.permanent
    await sink.aclose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def sender_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A sender's database holding the outbox table (as its migration would create it)."""
    schema = None
    if request.param == "postgres":
        schema = f"t_{uuid.uuid4().hex[:12]}"
        database = Database(PG_URL, schema=schema)
        async with database.engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    else:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'sender.db'}")
    async with database.engine.begin() as conn:
        await conn.run_sync(Table(OUTBOX_TABLE, MetaData(), *outbox_columns()).metadata.create_all)
    yield database
    if schema:
        async with database.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await database.dispose()


async def _outbox_rows(database: Database) -> int:
    table = Table(OUTBOX_TABLE, MetaData(), *outbox_columns())
    async with database.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def test_outbox_ships_only_committed_events_and_keeps_them_until_delivered(
    sender_db: Database,
) -> None:
    sink = FlakySink(failures=2)
    outbox = SqlEventOutbox(sender_db, sink, poll_interval=0.05, backoff=0.02, max_backoff=0.1)
    committed, rolled_back = _event(), _event()
    async with sender_db.sessions() as session:
        async with session.begin():
            await outbox.add(session, committed)
        async with session.begin():
            await outbox.add(session, rolled_back)
            await session.rollback()  # the transfer failed
    assert await _outbox_rows(sender_db) == 1

    # The sender "crashed" before relaying: a new outbox on the same database ships it.
    async with SqlEventOutbox(sender_db, sink, poll_interval=0.05, backoff=0.02) as relay:
        for _ in range(100):
            if sink.delivered and await _outbox_rows(sender_db) == 0:
                break
            await asyncio.sleep(0.05)
        assert relay is not None
    assert sink.delivered == [committed.id]
    assert sink.attempts == 3
    assert await _outbox_rows(sender_db) == 0


async def test_outbox_takes_core_connections_and_ships_on_wake(sender_db: Database) -> None:
    sink = FlakySink()
    event = _event()
    async with SqlEventOutbox(sender_db, sink, poll_interval=30) as outbox:
        async with sender_db.engine.connect() as conn:
            await outbox.add(conn, event)
            await conn.commit()
        outbox.wake()
        for _ in range(100):
            if sink.delivered:
                break
            await asyncio.sleep(0.02)
    assert sink.delivered == [event.id]


def test_backoff_doubles_with_equal_jitter_up_to_the_cap() -> None:
    backoff = Backoff(0.5, 4.0)
    for failures, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0)]:
        assert all(ceiling / 2 <= backoff.delay(failures) <= ceiling for _ in range(100))
