"""Redis implementation of :class:`~edgelib.backends.base.Backend` (redis-py asyncio)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from edgelib.backends.base import BackendError

#: Tries after a connection error (a pooled connection that died with a Redis restart).
RECONNECT_RETRIES = 2


def connect_redis(url: str, **options: Any) -> aioredis.Redis:
    """A redis-py asyncio client that retries a command on a dropped connection.

    ``Redis.from_url`` gives its connections no retry at all: after a Redis restart,
    every pooled connection opened before it fails once, on its next use, however long
    Redis has been back ("Connection closed by server"). Here such a command is sent
    again on a fresh connection (at most twice, 50-250 ms apart). Timeouts are not
    retried: a request waits one ``socket_timeout``, not three.
    """
    return aioredis.Redis.from_url(
        url,
        retry=Retry(
            ExponentialWithJitterBackoff(base=0.05, cap=0.25),
            RECONNECT_RETRIES,
            supported_errors=(RedisConnectionError,),
        ),
        retry_on_error=[RedisConnectionError],
        **options,
    )


class RedisSubscription:
    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[str, bytes]]:
        try:
            async for message in self._pubsub.listen():
                if message.get("type") != "message":
                    continue
                channel = message["channel"]
                if isinstance(channel, bytes):
                    channel = channel.decode()
                yield channel, message["data"]
        except (RedisError, OSError) as exc:
            raise BackendError(str(exc)) from exc

    async def close(self) -> None:
        try:
            await self._pubsub.unsubscribe()
            await self._pubsub.aclose()
        except (RedisError, OSError, RuntimeError):
            pass


class RedisBackend:
    def __init__(self, url: str) -> None:
        self.url = url
        self._redis = connect_redis(
            url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
        )

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except (TimeoutError, RedisError, OSError) as exc:
            raise BackendError(str(exc)) from exc

    async def get(self, key: str) -> bytes | None:
        value = await self._call(self._redis.get(key))
        return None if value is None else bytes(value)

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, only_if_absent: bool = False
    ) -> bool:
        px = None if ttl is None else max(1, int(ttl * 1000))
        result = await self._call(self._redis.set(key, value, px=px, nx=only_if_absent))
        return bool(result)

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self._call(self._redis.delete(*keys)))

    async def exists(self, key: str) -> bool:
        return bool(await self._call(self._redis.exists(key)))

    async def ttl(self, key: str) -> float | None:
        ms = int(await self._call(self._redis.pttl(key)))
        return None if ms < 0 else ms / 1000

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        if ttl is None:
            return int(await self._call(self._redis.incrby(key, amount)))
        # The TTL is set only when the counter is created, so a window does not slide.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(key, amount)
            pipe.pexpire(key, max(1, int(ttl * 1000)), nx=True)
            value, _ = await self._call(pipe.execute())
        return int(value)

    async def publish(self, channel: str, message: bytes) -> int:
        return int(await self._call(self._redis.publish(channel, message)))

    async def subscribe(self, *channels: str) -> RedisSubscription:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._call(pubsub.subscribe(*channels))
        return RedisSubscription(pubsub)

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()
