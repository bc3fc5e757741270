"""Fixed-window request limits counted on the shared :class:`~edgelib.backends.Backend`.

Counting in the backend (Redis beyond one machine) makes a limit hold across every
instance of a service. One counter per (rule, subject) lives for one window: the
first hit creates it with the window as its TTL, so the window does not slide and a
refusal can say exactly when the counter resets (``Retry-After``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgelib.backends import Backend
from edgelib.problems import TooManyRequests


@dataclass(frozen=True, slots=True)
class WindowLimit:
    """At most ``limit`` hits per ``window`` seconds for one subject; 0 turns it off."""

    name: str
    limit: int
    window: float


class RateLimited(TooManyRequests):
    type_slug, title = "rate-limited", "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)
        self.retry_after = retry_after


class RequestLimiter:
    """Counts hits per rule and subject; raises :class:`RateLimited` past a limit."""

    def __init__(self, backend: Backend, *, prefix: str) -> None:
        self.backend = backend
        self.prefix = prefix

    def _key(self, rule: WindowLimit, subject: str) -> str:
        return f"{self.prefix}:{rule.name}:{subject}"

    async def hit(self, rule: WindowLimit, subject: str | None, what: str) -> None:
        """Count one hit on ``subject`` (nothing when it is None or the rule is off)."""
        if subject is None or rule.limit <= 0:
            return
        key = self._key(rule, subject)
        count = await self.backend.incr(key, ttl=rule.window)
        if count <= rule.limit:
            return
        remaining = await self.backend.ttl(key)
        retry_after = max(1, math.ceil(remaining if remaining is not None else rule.window))
        raise RateLimited(f"too many {what}; try again in {retry_after} s", retry_after)
