"""Logins' own lane: at most ``concurrency`` logins doing auth-jwt's work at once.

A login is the heaviest thing auth-jwt does (lockout counters, calls to sv-region and
sv-user, session rows, signing); everything else (refresh, JWKS, /healthz) is a few
round trips. All of it shares one event loop, and a request that needs many turns of
that loop (a refresh needs about a dozen) waits behind every login callback ready
before it on each turn. The lane keeps the logins working in the loop few: the rest
wait on a semaphore, where they cost the loop nothing, and past ``queue`` waiting
logins a new one is refused at once with ``503`` and ``Retry-After`` instead of piling
up. A login leaves the lane while sv-user hashes its password, so the lane does not
leave sv-user's hashing threads idle (doc/services/auth-jwt.md, "The login lane").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from auth_jwt.sessions.exceptions import LoginBusy


class LoginLane:
    """A bounded concurrency limit with a bounded queue, for logins."""

    def __init__(self, concurrency: int, queue: int, *, retry_after: int = 1) -> None:
        #: 0 turns the lane off: every login runs at once, as before.
        self.concurrency = concurrency
        self.queue = queue
        self.retry_after = retry_after
        self._slots = asyncio.Semaphore(max(concurrency, 1))
        self.waiting = 0

    @contextlib.asynccontextmanager
    async def slot(self, *, refuse: bool = True) -> AsyncIterator[None]:
        """Hold one of the lane's places; :class:`LoginBusy` when the queue is full too.

        ``refuse=False`` waits whatever the queue holds: for a login already past its
        password check, whose hash must not be thrown away.
        """
        if self.concurrency <= 0:
            yield
            return
        if self._slots.locked():
            if refuse and self.waiting >= self.queue:
                raise LoginBusy(self.retry_after)
            self.waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()
