"""Console sessions: held in the gateway's memory, bounded in number and in time.

The browser's cookie holds only a random session id. The platform tokens (the access
token, and the refresh token that renews it) stay here, so script in a page can never
read them. The store is bounded: at ``max_sessions`` the least recently used session
is dropped; a session unused for ``idle_timeout`` seconds, or older than ``max_age``,
has ended.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field


def _token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class ConsoleSession:
    """One signed-in browser: who it is, its platform tokens and its CSRF token."""

    user_id: str
    username: str
    tenant: str
    access_token: str
    refresh_token: str
    #: When the access token expires (``time.time()`` seconds).
    access_expires: float
    #: The platform session (the tokens' ``sid``): revoked there, this one ends too.
    platform_session: str = ""
    id: str = field(default_factory=_token)
    #: The synchronizer token every change must carry (form field or header).
    csrf: str = field(default_factory=_token)
    created: float = field(default_factory=time.monotonic)
    last_seen: float = field(default_factory=time.monotonic)
    #: One-shot messages for the next page (``(level, text)``), at most a few.
    flashes: list[tuple[str, str]] = field(default_factory=list)
    #: Held while the tokens are renewed: a refresh token works once, and a second use
    #: would end the session at auth-jwt (replay detection).
    renewing: asyncio.Lock = field(default_factory=asyncio.Lock)

    def flash(self, level: str, text: str) -> None:
        """A message for the next page shown (kept to the last five)."""
        self.flashes = [*self.flashes[-4:], (level, text)]

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken


class SessionStore:
    """The console sessions of this gateway process, bounded in number and age."""

    def __init__(self, *, max_sessions: int, idle_timeout: float, max_age: float) -> None:
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.max_age = max_age
        self._sessions: OrderedDict[str, ConsoleSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def add(self, session: ConsoleSession) -> ConsoleSession:
        """Keep ``session``; the least recently used one goes when the store is full."""
        self._expire()
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> ConsoleSession | None:
        """The live session of this id (and mark it used), or None."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.idle_timeout or now - session.created > self.max_age:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        self._sessions.move_to_end(session_id)
        return session

    def remove(self, session_id: str) -> ConsoleSession | None:
        return self._sessions.pop(session_id, None)

    def _expire(self) -> None:
        """Drop the sessions idle for too long (the least recently used come first)."""
        now = time.monotonic()
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if now - oldest.last_seen <= self.idle_timeout:
                break
            self._sessions.popitem(last=False)
