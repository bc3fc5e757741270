"""One contract for the Redis features, run against the in-process backend and real Redis."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from edgelib.backends import Backend, BackendError, MemoryBackend, RedisBackend, open_backend


@pytest.fixture
def key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_get_of_missing_key_is_none(backend: Backend, key: str) -> None:
    assert await backend.get(key) is None
    assert not await backend.exists(key)


async def test_set_then_get_round_trips_bytes(backend: Backend, key: str) -> None:
    assert await backend.set(key, b"\x00value\xff")
    assert await backend.get(key) == b"\x00value\xff"
    assert await backend.exists(key)


async def test_set_only_if_absent_keeps_first_value(backend: Backend, key: str) -> None:
    assert await backend.set(key, b"first", only_if_absent=True)
    assert not await backend.set(key, b"second", only_if_absent=True)
    assert await backend.get(key) == b"first"


async def test_key_expires_after_ttl(backend: Backend, key: str) -> None:
    await backend.set(key, b"v", ttl=0.15)
    remaining = await backend.ttl(key)
    assert remaining is not None
    assert 0 < remaining <= 0.15
    await asyncio.sleep(0.3)
    assert await backend.get(key) is None
    assert await backend.ttl(key) is None


async def test_delete_counts_removed_keys(backend: Backend, key: str) -> None:
    await backend.set(key, b"v")
    assert await backend.delete(key, key + ":other") == 1
    assert await backend.get(key) is None


async def test_incr_is_atomic_under_concurrency(backend: Backend, key: str) -> None:
    results = await asyncio.gather(*(backend.incr(key) for _ in range(50)))
    assert sorted(results) == list(range(1, 51))
    assert await backend.incr(key, 10) == 60


async def test_incr_ttl_is_set_once_and_window_does_not_slide(backend: Backend, key: str) -> None:
    await backend.incr(key, ttl=0.3)
    await asyncio.sleep(0.15)
    await backend.incr(key, ttl=0.3)
    await asyncio.sleep(0.25)
    assert await backend.get(key) is None


async def test_incr_of_non_integer_raises_backend_error(backend: Backend, key: str) -> None:
    await backend.set(key, b"not-a-number")
    with pytest.raises(BackendError):
        await backend.incr(key)


async def test_publish_reaches_every_subscriber_in_order(backend: Backend, key: str) -> None:
    sub_a = await backend.subscribe(key)
    sub_b = await backend.subscribe(key, key + ":other")
    await asyncio.sleep(0.05)
    assert await backend.publish(key, b"one") == 2
    await backend.publish(key, b"two")
    await backend.publish(key + ":other", b"three")

    async def take(sub: object, n: int) -> list[tuple[str, bytes]]:
        got: list[tuple[str, bytes]] = []
        async for item in sub:  # type: ignore[attr-defined]
            got.append(item)
            if len(got) == n:
                break
        return got

    got_a = await asyncio.wait_for(take(sub_a, 2), 2)
    got_b = await asyncio.wait_for(take(sub_b, 3), 2)
    assert got_a == [(key, b"one"), (key, b"two")]
    assert got_b == [(key, b"one"), (key, b"two"), (key + ":other", b"three")]
    await sub_a.close()
    await sub_b.close()


async def test_publish_without_subscribers_returns_zero(backend: Backend, key: str) -> None:
    assert await backend.publish(key, b"nobody") == 0


async def test_closed_subscription_gets_nothing_more(backend: Backend, key: str) -> None:
    sub = await backend.subscribe(key)
    await asyncio.sleep(0.05)
    await sub.close()
    assert await backend.publish(key, b"late") == 0


async def test_ping_answers(backend: Backend) -> None:
    await backend.ping()


def test_open_backend_picks_implementation_by_scheme() -> None:
    assert isinstance(open_backend("memory://"), MemoryBackend)
    assert isinstance(open_backend("redis://127.0.0.1:6379/0"), RedisBackend)
    with pytest.raises(ValueError, match="unsupported"):
        open_backend("mongodb://x")


async def test_unreachable_redis_raises_backend_error() -> None:
    b = open_backend("redis://127.0.0.1:1/0")
    with pytest.raises(BackendError):
        await b.ping()
    await b.close()


async def test_a_connection_pooled_before_a_redis_restart_is_replaced_not_failed(
    tmp_path: Path,
) -> None:
    """After Redis restarts, each connection the pool opened before it is dead. The next
    command on one must be sent again on a fresh connection, not fail: services that use
    some connections rarely would otherwise answer 503 long after Redis is back."""
    from tests.e2e.servers import OwnRedis

    server = OwnRedis(tmp_path)
    server.start()
    backend = RedisBackend(server.url)
    try:
        # Three connections in the pool, all idle when Redis goes away.
        await asyncio.gather(*(backend.set(f"k{i}", b"v") for i in range(3)))
        server.stop()
        with pytest.raises(BackendError):  # down is down: no endless retrying
            await backend.get("k0")
        server.start()
        # As many at once as the pool holds: the stale connections are taken too.
        assert all(await asyncio.gather(*(backend.set(f"after-{i}", b"v") for i in range(3))))
        assert await asyncio.gather(*(backend.get(f"after-{i}") for i in range(3))) == [b"v"] * 3
    finally:
        await backend.close()
        server.stop()
