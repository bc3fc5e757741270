"""The delivery queue: which delivery to attempt next, now or after a delay.

The queue carries delivery ids only; the database row is the truth (see
:mod:`sv_notice.delivery.repository`). Two implementations:

- :class:`MemoryQueue`, the local profile's: an asyncio queue plus timers. What it
  holds is lost with the process, and recovered from the database outbox when the
  instance starts again.
- :class:`~sv_notice.delivery.redis_queue.RedisStreamQueue`: a Redis stream with a
  consumer group, and a sorted set for delayed retries.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Ticket:
    """One delivery id taken from the queue; ``ref`` is the queue's own handle."""

    delivery_id: str
    ref: str = ""


class DeliveryQueue(Protocol):
    async def start(self) -> None: ...

    async def push(
        self, delivery_id: str, *, delay: float = 0.0, only_if_absent: bool = False
    ) -> None:
        """Queue ``delivery_id``; with ``only_if_absent``, not if it is already waiting."""
        ...

    async def pop(self, timeout: float) -> Ticket | None: ...

    async def ack(self, ticket: Ticket) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with equal jitter: attempt n waits in [d/2, d], d = base * 2^(n-1)."""

    base: float
    cap: float
    max_attempts: int

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** max(0, attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def exhausted(self, attempt: int) -> bool:
        return attempt >= self.max_attempts


class MemoryQueue:
    """In-process queue: ready ids in an asyncio queue, delayed ones on loop timers."""

    def __init__(self) -> None:
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._timers: set[asyncio.TimerHandle] = set()
        self._waiting: set[str] = set()

    async def start(self) -> None:
        return None

    async def push(
        self, delivery_id: str, *, delay: float = 0.0, only_if_absent: bool = False
    ) -> None:
        if only_if_absent and delivery_id in self._waiting:
            return
        self._waiting.add(delivery_id)
        if delay <= 0:
            self._ready.put_nowait(delivery_id)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self._ready.put_nowait(delivery_id)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    async def pop(self, timeout: float) -> Ticket | None:
        try:
            delivery_id = await asyncio.wait_for(self._ready.get(), timeout)
        except TimeoutError:
            return None
        self._waiting.discard(delivery_id)
        return Ticket(delivery_id)

    async def ack(self, ticket: Ticket) -> None:
        return None

    async def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._waiting.clear()

    def __len__(self) -> int:
        return self._ready.qsize() + len(self._timers)
