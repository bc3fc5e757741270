"""Brute-force protection: failed logins per account and per client address.

Failures are counted in the backend (Redis, or in-process locally) over a window.
Reaching the limit locks that account or address; the first lockout lasts
``base`` seconds and each further one within a day doubles it, up to ``maximum``.
A successful login clears the account's and the address's counters.
"""

from __future__ import annotations

import math

from auth_jwt.sessions.exceptions import LoginLocked
from edgelib.backends import Backend

STRIKES_TTL = 86400.0


class LoginGuard:
    def __init__(
        self,
        backend: Backend,
        *,
        account_failures: int,
        address_failures: int,
        window: float,
        base: float,
        maximum: float,
        prefix: str = "auth:login",
    ) -> None:
        self.backend = backend
        self.limits = {"account": account_failures, "address": address_failures}
        self.window = window
        self.base = base
        self.maximum = maximum
        self.prefix = prefix

    def _subjects(self, username: str, address: str | None) -> list[tuple[str, str]]:
        subjects = [("account", username.strip().lower())]
        if address:
            subjects.append(("address", address))
        return subjects

    def _key(self, what: str, kind: str, subject: str) -> str:
        return f"{self.prefix}:{what}:{kind}:{subject}"

    async def check(self, username: str, address: str | None) -> None:
        """Raise :class:`LoginLocked` while the account or the address is locked out."""
        wait = 0.0
        for kind, subject in self._subjects(username, address):
            if await self.backend.exists(self._key("lock", kind, subject)):
                wait = max(wait, await self.backend.ttl(self._key("lock", kind, subject)) or 1.0)
        if wait:
            raise LoginLocked(max(1, math.ceil(wait)))

    async def failed(self, username: str, address: str | None) -> None:
        """Count a failure; raise :class:`LoginLocked` when it reaches a limit."""
        locked_for = 0.0
        for kind, subject in self._subjects(username, address):
            failures = await self.backend.incr(self._key("fail", kind, subject), ttl=self.window)
            if failures < self.limits[kind]:
                continue
            strikes = await self.backend.incr(self._key("strikes", kind, subject), ttl=STRIKES_TTL)
            duration = min(self.maximum, self.base * 2 ** (strikes - 1))
            await self.backend.set(self._key("lock", kind, subject), b"1", ttl=duration)
            await self.backend.delete(self._key("fail", kind, subject))
            locked_for = max(locked_for, duration)
        if locked_for:
            raise LoginLocked(max(1, math.ceil(locked_for)))

    async def succeeded(self, username: str, address: str | None) -> None:
        keys = [
            self._key(what, kind, subject)
            for kind, subject in self._subjects(username, address)
            for what in ("fail", "strikes")
        ]
        await self.backend.delete(*keys)
