"""The small interface for the Redis features the platform uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable


class BackendError(Exception):
    """The backend (Redis, or the in-process stand-in) failed an operation."""


@runtime_checkable
class Subscription(Protocol):
    """Messages published on one or more channels, in order, until closed."""

    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]: ...

    async def close(self) -> None: ...


@runtime_checkable
class Backend(Protocol):
    """Key/value with TTL, atomic counters and pub/sub.

    Values are bytes. TTLs are in seconds (floats allowed). A key whose TTL has
    passed reads as missing.
    """

    async def get(self, key: str) -> bytes | None: ...

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, only_if_absent: bool = False
    ) -> bool: ...

    async def delete(self, *keys: str) -> int: ...

    async def exists(self, key: str) -> bool: ...

    async def ttl(self, key: str) -> float | None: ...

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int: ...

    async def publish(self, channel: str, message: bytes) -> int: ...

    async def subscribe(self, *channels: str) -> Subscription: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
