"""The delivery queues and the retry policy."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis import asyncio as aioredis

from sv_notice.delivery.queue import MemoryQueue, RetryPolicy
from sv_notice.delivery.redis_queue import RedisStreamQueue
from tests.conftest import REDIS_URL


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    policy = RetryPolicy(base=1.0, cap=10.0, max_attempts=5)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not a fixed schedule
    assert not policy.exhausted(4)
    assert policy.exhausted(5)


async def test_memory_queue_holds_delayed_ids_until_due() -> None:
    queue = MemoryQueue()
    await queue.push("later", delay=0.2)
    await queue.push("now")
    started = time.monotonic()
    first = await queue.pop(1.0)
    assert first is not None
    assert first.delivery_id == "now"
    second = await queue.pop(1.0)
    assert second is not None
    assert second.delivery_id == "later"
    assert time.monotonic() - started >= 0.19
    assert await queue.pop(0.05) is None
    # The outbox sweep does not queue what is already waiting; a taken id may come again.
    await queue.push("x")
    await queue.push("x", only_if_absent=True)
    taken = await queue.pop(0.1)
    assert taken is not None
    assert await queue.pop(0.05) is None
    await queue.push("x", only_if_absent=True)
    assert await queue.pop(0.1) is not None
    await queue.close()


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    ns = f"test:queue:{uuid.uuid4().hex[:10]}"
    yield ns
    redis = aioredis.Redis.from_url(REDIS_URL)
    keys = [k async for k in redis.scan_iter(match=ns + ":*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.mark.integration
async def test_redis_stream_queue_delivers_once_per_group_delays_and_reclaims(
    namespace: str,
) -> None:
    a = RedisStreamQueue(REDIS_URL, namespace, "a", claim_idle=0.3, move_interval=0.02)
    b = RedisStreamQueue(REDIS_URL, namespace, "b", claim_idle=0.3, move_interval=0.02)
    await a.start()
    await b.start()
    try:
        await a.push("d-1")
        taken = await a.pop(1.0)
        assert taken is not None
        assert taken.delivery_id == "d-1"
        assert await b.pop(0.1) is None  # one consumer per entry
        # "a" dies without acknowledging: after claim_idle, "b" takes the entry over.
        await asyncio.sleep(0.35)
        b._next_claim = 0.0
        reclaimed = await b.pop(1.0)
        assert reclaimed is not None
        assert (reclaimed.delivery_id, reclaimed.ref) == ("d-1", taken.ref)
        await b.ack(reclaimed)

        await a.push("d-2", delay=0.3)
        started = time.monotonic()
        delayed = await b.pop(0.1) or await b.pop(1.0)
        assert delayed is not None
        assert delayed.delivery_id == "d-2"
        assert time.monotonic() - started >= 0.25
        await b.ack(delayed)
        b._next_claim = 0.0
        assert await b.pop(0.1) is None  # acknowledged entries are gone

        await a.push("d-3")
        await a.push("d-3", only_if_absent=True)  # the sweep finding it still waiting
        await a.push("d-3", delay=5, only_if_absent=True)
        first = await b.pop(1.0)
        assert first is not None
        assert first.delivery_id == "d-3"
        await b.ack(first)
        assert await b.pop(0.1) is None
    finally:
        await a.close()
        await b.close()
