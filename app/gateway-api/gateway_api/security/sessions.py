"""Revoked sessions, as the gateway knows them: a set in memory, kept current two ways.

auth-jwt announces every ended session on the backend's pub/sub channel (with Redis,
every gateway hears it at once) and records it in a table the gateway polls through
``GET /internal/revocations`` (the fallback, and the only path between processes with
the in-process backend of the local profile). A request's check is a dictionary
lookup; no request waits on the network for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from edgelib.backends import Backend, BackendError
from edgelib.tasks import cancel

logger = logging.getLogger("gateway.sessions")

RevocationFeed = Callable[[float], Awaitable[Mapping[str, Any]]]


def _nothing() -> None:
    return None


class RevokedSessions:
    """Session ids whose access tokens must be refused, until those tokens expire."""

    def __init__(
        self,
        feed: RevocationFeed,
        *,
        backend: Backend | None = None,
        channel: str = "edge:auth:revocations",
        poll_interval: float = 0.5,
        overlap: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._feed = feed
        self.backend = backend
        self.channel = channel
        self.poll_interval = poll_interval
        # Re-read a little of the past each poll: a revocation committed late (a slow
        # transaction) still carries a revoked_at before the previous answer's time.
        self.overlap = overlap
        self._clock = clock
        self._revoked: dict[str, float] = {}
        #: Callbacks of live connections (WebSocket tunnels) by the session they belong to.
        self._watchers: dict[str, list[Callable[[], None]]] = {}
        self._since = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._feed_ok: bool | None = None
        self.polls = 0
        self.last_poll: float | None = None

    def __len__(self) -> int:
        return len(self._revoked)

    @property
    def loaded(self) -> bool:
        """The feed has answered once: sessions revoked before this gateway started are known."""
        return self.polls > 0

    def is_revoked(self, session_id: str) -> bool:
        return session_id in self._revoked

    def add(self, session_id: str, expires: float) -> None:
        if expires > self._revoked.get(session_id, 0.0):
            self._revoked[session_id] = expires
            for on_revoked in self._watchers.pop(session_id, []):
                try:
                    on_revoked()
                except Exception:  # one broken callback must not stop the others
                    logger.exception("revocation callback failed")

    def watch(self, session_id: str, on_revoked: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_revoked`` once ``session_id`` is revoked (at once if it already is).

        For connections that outlive the request that authenticated them (WebSocket
        tunnels): they end when their session does. Returns the function that stops
        watching (call it when the connection ends first).
        """
        if session_id in self._revoked:
            on_revoked()
            return _nothing
        callbacks = self._watchers.setdefault(session_id, [])
        callbacks.append(on_revoked)

        def stop_watching() -> None:
            if on_revoked in callbacks:
                callbacks.remove(on_revoked)
            if not callbacks and self._watchers.get(session_id) is callbacks:
                del self._watchers[session_id]

        return stop_watching

    @property
    def watched(self) -> int:
        """Live connections waiting on their session's revocation."""
        return sum(len(callbacks) for callbacks in self._watchers.values())

    def _absorb(self, entries: object) -> None:
        if not isinstance(entries, list):
            return
        for entry in entries:
            if isinstance(entry, dict):
                sid, exp = entry.get("sid"), entry.get("exp")
                if isinstance(sid, str) and isinstance(exp, int | float):
                    self.add(sid, float(exp))

    def prune(self) -> None:
        now = self._clock()
        for sid in [s for s, exp in self._revoked.items() if exp < now]:
            del self._revoked[sid]

    async def poll(self) -> bool:
        """Fetch revocations made since the last poll; False when the feed failed."""
        try:
            doc = await self._feed(max(0.0, self._since - self.overlap))
        except Exception as exc:
            if self._feed_ok is not False:
                logger.warning(
                    "revocation feed unavailable", extra={"error": f"{type(exc).__name__}: {exc}"}
                )
            self._feed_ok = False
            return False
        self._absorb(doc.get("revocations"))
        now = doc.get("now")
        if isinstance(now, int | float):
            self._since = float(now)
        if self._feed_ok is False:
            logger.info("revocation feed back")
        self._feed_ok = True
        self.polls += 1
        self.last_poll = self._clock()
        self.prune()
        return True

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            await self.poll()

    async def _listen_loop(self) -> None:
        assert self.backend is not None
        while True:
            try:
                subscription = await self.backend.subscribe(self.channel)
                try:
                    async for _channel, message in subscription:
                        try:
                            self._absorb(orjson.loads(message).get("revocations"))
                        except (orjson.JSONDecodeError, AttributeError):
                            logger.warning("malformed revocation message")
                finally:
                    await subscription.close()
            except BackendError as exc:
                logger.warning("revocation channel lost", extra={"error": str(exc)})
            await asyncio.sleep(1.0)

    async def start(self) -> None:
        """Load what is revoked now, then keep listening and polling."""
        await self.poll()
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="gateway-revocation-poll"))
        if self.backend is not None:
            self._tasks.append(
                asyncio.create_task(self._listen_loop(), name="gateway-revocation-listen")
            )

    async def stop(self) -> None:
        await cancel(*self._tasks)
        self._tasks.clear()

    def snapshot(self) -> dict[str, object]:
        return {
            "revoked_sessions": len(self._revoked),
            "watched_connections": self.watched,
            "polls": self.polls,
            "loaded": self.loaded,
            "feed": {None: "unknown", True: "ok", False: "failing"}[self._feed_ok],
        }
