"""Wakes waiting watchers when a release changes, on this instance and on every other.

A committed change is announced here (local waiters wake at once) and published on the
backend's pub/sub, so every other sv-config instance wakes its own waiters. Pub/sub is
fire-and-forget, so a fallback also scans the audit log for release changes every few
seconds: a lost message delays a watcher, it never loses the change.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import orjson

from edgelib.backends import Backend, BackendError, Subscription
from edgelib.db import Database
from sv_config.releases.service import ChangeKey
from sv_config.repository import ConfigRepository

logger = logging.getLogger("sv_config.watch")

CHANNEL = "sv-config:changes"


class WatchHub:
    def __init__(
        self, backend: Backend, database: Database, *, fallback_interval: float = 2.0
    ) -> None:
        self.backend = backend
        self.database = database
        self.fallback_interval = fallback_interval
        self.closed = False
        self._origin = uuid.uuid4().hex
        self._waiters: dict[ChangeKey, set[asyncio.Event]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._last_audit_id = 0
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        async with self.database.sessions() as session:
            self._last_audit_id = await ConfigRepository(session).last_audit_id()
        self._tasks = [
            asyncio.create_task(self._listen(), name="sv-config-watch-listen"),
            asyncio.create_task(self._fallback(), name="sv-config-watch-fallback"),
        ]

    def drain(self) -> None:
        """Answer every waiting watch now, and new ones at once: the instance is stopping."""
        self.closed = True
        for events in self._waiters.values():
            for event in events:
                event.set()

    async def close(self) -> None:
        self.drain()
        if self._subscription is not None:
            # Closed before the task is cancelled: Redis' listener does not always
            # give way to a cancellation while it waits for a message.
            await self._subscription.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _done, stuck = await asyncio.wait(self._tasks, timeout=5.0)
            if stuck:
                logger.warning("watch tasks did not stop in time", extra={"tasks": len(stuck)})

    @contextmanager
    def listening(self, keys: Iterable[ChangeKey]) -> Iterator[asyncio.Event]:
        """An event set whenever one of ``keys`` changes, for as long as the block lasts."""
        event = asyncio.Event()
        keys = set(keys)
        for key in keys:
            self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            for key in keys:
                waiting = self._waiters.get(key)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[key]

    @property
    def waiting(self) -> int:
        return len({id(e) for events in self._waiters.values() for e in events})

    def wake(self, keys: Iterable[ChangeKey]) -> None:
        for key in keys:
            for event in self._waiters.get(key, ()):
                event.set()

    async def announce(self, keys: Iterable[ChangeKey]) -> None:
        """Wake this instance's waiters now and tell the other instances."""
        keys = sorted(set(keys))
        self.wake(keys)
        message = orjson.dumps({"origin": self._origin, "keys": keys})
        try:
            await self.backend.publish(CHANNEL, message)
        except BackendError as exc:
            logger.warning("change announcement failed", extra={"error": str(exc)})

    async def _listen(self) -> None:
        while not self.closed:
            try:
                self._subscription = await self.backend.subscribe(CHANNEL)
                if self.closed:  # closed while subscribing (a cancellation may be lost there)
                    await self._subscription.close()
                    return
                async for _channel, message in self._subscription:
                    self._on_message(message)
                return  # the subscription was closed: the hub or the backend is stopping
            except BackendError as exc:
                logger.warning("change subscription lost", extra={"error": str(exc)})
                if self._subscription is not None:
                    await self._subscription.close()
                    self._subscription = None
                await asyncio.sleep(1.0)

    def _on_message(self, message: bytes) -> None:
        try:
            doc = orjson.loads(message)
            if doc.get("origin") == self._origin:
                return  # announced locally already
            self.wake((str(env), str(name)) for env, name in doc["keys"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            logger.warning("malformed change announcement ignored")

    async def _fallback(self) -> None:
        while not self.closed:
            await asyncio.sleep(self.fallback_interval)
            try:
                async with self.database.sessions() as session:
                    rows = await ConfigRepository(session).release_changes_after(
                        self._last_audit_id
                    )
            except Exception as exc:  # the database may be briefly away; try again later
                logger.warning("watch fallback scan failed", extra={"error": str(exc)})
                continue
            if rows:
                self._last_audit_id = rows[-1][0]
                self.wake({(environment, name) for _id, environment, name in rows})
