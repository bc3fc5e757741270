"""Realtime push: notices fan out over the backend's pub/sub to connected clients.

Every instance of the region holds one subscription on one channel; a message
names its user, and the instance hands it to that user's connections (WebSocket
or SSE) it holds. A client that cannot keep up loses messages (it is told how many)
and reads them from the inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from edgelib.backends import Backend, BackendError
from edgelib.tasks import cancel

logger = logging.getLogger("sv_notice.realtime")


class Connection:
    """One connected client's bounded queue of events."""

    def __init__(self, user_id: str, size: int) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=size)
        self.dropped = 0

    def offer(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1


class RealtimeHub:
    def __init__(self, backend: Backend, channel: str, *, client_queue: int = 100) -> None:
        self.backend = backend
        self.channel = channel
        self.client_queue = client_queue
        self._connections: dict[str, set[Connection]] = {}
        self._pump: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._closing = False

    async def start(self) -> None:
        self._pump = asyncio.create_task(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 5.0)

    async def close(self) -> None:
        self._closing = True
        await cancel(self._pump)

    @property
    def connected(self) -> int:
        return sum(len(c) for c in self._connections.values())

    async def publish(self, user_id: str, event: dict[str, Any]) -> None:
        """Send ``event`` to ``user_id``'s clients on every instance."""
        await self.backend.publish(self.channel, orjson.dumps({"user_id": user_id, "event": event}))

    async def _run(self) -> None:
        delay = 0.2
        # A flag as well as cancellation: the Redis client may turn a cancellation
        # that lands mid-read into a connection error, which this loop survives.
        while not self._closing:
            try:
                subscription = await self.backend.subscribe(self.channel)
            except BackendError as exc:
                logger.warning("realtime subscribe failed", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._subscribed.set()
            delay = 0.2
            try:
                async for _channel, message in subscription:
                    self._dispatch(message)
            except BackendError as exc:
                logger.warning("realtime subscription lost", extra={"error": str(exc)})
            finally:
                await subscription.close()
            await asyncio.sleep(delay)

    def _dispatch(self, message: bytes) -> None:
        try:
            doc = orjson.loads(message)
            user_id, event = doc["user_id"], doc["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        for connection in self._connections.get(user_id, ()):
            connection.offer(event)

    @asynccontextmanager
    async def connect(self, user_id: str) -> AsyncIterator[Connection]:
        """Receive ``user_id``'s events for as long as the context lasts."""
        connection = Connection(user_id, self.client_queue)
        self._connections.setdefault(user_id, set()).add(connection)
        try:
            yield connection
        finally:
            held = self._connections.get(user_id)
            if held is not None:
                held.discard(connection)
                if not held:
                    del self._connections[user_id]
