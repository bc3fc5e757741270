"""Live tail: stored records fan out over the backend's pub/sub to SSE clients.

Every sv-log instance publishes each stored batch on one channel; an instance with
tail clients holds one subscription and hands each client the records its filter
wants. A client that cannot keep up loses records and is told how many.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson

from edgelib.backends import Backend, BackendError, Subscription
from edgelib.tasks import cancel
from sv_log.schemas import LogRecordOut
from sv_log.store import LogFilter

logger = logging.getLogger("sv_log.tail")

CHANNEL = "sv-log:tail"
#: After a publish that nobody heard, skip encoding batches for this long.
QUIET_SECONDS = 1.0


class TailClient:
    """One SSE client's bounded queue of matching records."""

    def __init__(self, flt: LogFilter, size: int) -> None:
        self.filter = flt
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=size)
        self.lagged = 0

    def offer(self, docs: Sequence[dict[str, Any]]) -> None:
        for doc in docs:
            if not self.filter.matches(doc, datetime.fromisoformat(doc["ts"])):
                continue
            try:
                self.queue.put_nowait(doc)
            except asyncio.QueueFull:
                self.lagged += 1


class TailHub:
    """Publishes stored records and dispatches them to this instance's tail clients."""

    def __init__(self, backend: Backend, *, client_queue: int = 1000) -> None:
        self.backend = backend
        self.client_queue = client_queue
        self._clients: set[TailClient] = set()
        self._subscription: Subscription | None = None
        self._pump: asyncio.Task[None] | None = None
        self._quiet_until = 0.0
        self._lock = asyncio.Lock()

    async def publish(self, records: Sequence[LogRecordOut]) -> None:
        """Offer stored records to every tail; a failure here never fails the intake."""
        if not records or (not self._clients and time.monotonic() < self._quiet_until):
            return
        payload = orjson.dumps([r.model_dump(mode="json") for r in records])
        try:
            heard = await self.backend.publish(CHANNEL, payload)
        except BackendError as exc:
            logger.warning("tail publish failed", extra={"error": str(exc)})
            return
        if heard == 0:
            self._quiet_until = time.monotonic() + QUIET_SECONDS

    async def _run(self, subscription: Subscription) -> None:
        try:
            async for _channel, message in subscription:
                docs = orjson.loads(message)
                for client in list(self._clients):
                    client.offer(docs)
        except BackendError as exc:
            logger.warning("tail subscription ended", extra={"error": str(exc)})

    @asynccontextmanager
    async def follow(self, flt: LogFilter) -> AsyncIterator[TailClient]:
        """Register a client for as long as the context lasts."""
        client = TailClient(flt, self.client_queue)
        async with self._lock:
            if self._subscription is None:
                self._subscription = await self.backend.subscribe(CHANNEL)
                self._pump = asyncio.create_task(self._run(self._subscription))
            self._clients.add(client)
        try:
            yield client
        finally:
            async with self._lock:
                self._clients.discard(client)
                if not self._clients:
                    await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        subscription, self._subscription = self._subscription, None
        pump, self._pump = self._pump, None
        if subscription is not None:
            await subscription.close()
        await cancel(pump)

    async def close(self) -> None:
        async with self._lock:
            self._clients.clear()
            await self._unsubscribe()


async def sse_events(client: TailClient, heartbeat: float) -> AsyncIterator[bytes]:
    """The client's records as server-sent events, with comment heartbeats."""
    yield b"retry: 3000\n: tailing\n\n"
    while True:
        try:
            first = await asyncio.wait_for(client.queue.get(), heartbeat)
        except TimeoutError:
            yield b": keep-alive\n\n"
            continue
        docs = [first]
        while not client.queue.empty() and len(docs) < 500:
            docs.append(client.queue.get_nowait())
        chunks = []
        if client.lagged:
            chunks.append(b"event: lagged\ndata: " + orjson.dumps({"dropped": client.lagged}))
            chunks.append(b"\n\n")
            client.lagged = 0
        for doc in docs:
            chunks.append(f"id: {doc['id']}\nevent: log\ndata: ".encode())
            chunks.append(orjson.dumps(doc))
            chunks.append(b"\n\n")
        yield b"".join(chunks)
