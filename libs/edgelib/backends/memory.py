"""In-process stand-in for Redis: one event loop, one process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from edgelib.backends.base import BackendError


class MemorySubscription:
    def __init__(self, backend: MemoryBackend, channels: tuple[str, ...]) -> None:
        self._backend = backend
        self.channels = channels
        self.queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._closed = False

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[str, bytes]]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._backend._unsubscribe(self)
            self.queue.put_nowait(None)


class MemoryBackend:
    """Dictionary with expiry times, plus fan-out queues for pub/sub."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._subs: dict[str, set[MemorySubscription]] = {}
        self._closed = False

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires = item[1]
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        return item

    def _check(self) -> None:
        if self._closed:
            raise BackendError("memory backend is closed")

    async def get(self, key: str) -> bytes | None:
        self._check()
        item = self._live(key)
        return None if item is None else item[0]

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, only_if_absent: bool = False
    ) -> bool:
        self._check()
        if only_if_absent and self._live(key) is not None:
            return False
        expires = None if ttl is None else time.monotonic() + ttl
        self._data[key] = (bytes(value), expires)
        return True

    async def delete(self, *keys: str) -> int:
        self._check()
        removed = 0
        for key in keys:
            if self._live(key) is not None:
                del self._data[key]
                removed += 1
        return removed

    async def exists(self, key: str) -> bool:
        self._check()
        return self._live(key) is not None

    async def ttl(self, key: str) -> float | None:
        self._check()
        item = self._live(key)
        if item is None or item[1] is None:
            return None
        return max(0.0, item[1] - time.monotonic())

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        self._check()
        item = self._live(key)
        if item is None:
            value = amount
            expires = None if ttl is None else time.monotonic() + ttl
        else:
            try:
                value = int(item[0]) + amount
            except ValueError as exc:
                raise BackendError(f"value of {key!r} is not an integer") from exc
            expires = item[1]
        self._data[key] = (str(value).encode(), expires)
        return value

    async def publish(self, channel: str, message: bytes) -> int:
        self._check()
        subs = self._subs.get(channel, set())
        for sub in subs:
            sub.queue.put_nowait((channel, bytes(message)))
        return len(subs)

    async def subscribe(self, *channels: str) -> MemorySubscription:
        self._check()
        sub = MemorySubscription(self, channels)
        for channel in channels:
            self._subs.setdefault(channel, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: MemorySubscription) -> None:
        for channel in sub.channels:
            self._subs.get(channel, set()).discard(sub)

    async def ping(self) -> None:
        self._check()

    async def close(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                await sub.close()
        self._closed = True
