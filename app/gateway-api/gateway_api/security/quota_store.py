"""Where quota counts live: Redis (exact, shared by every gateway) or this process.

One request's limits are decided together and atomically: one Lua script checks every
limit that applies (QPS, per-day, concurrency, for the app, its tenant, the route and
the service) and takes from all of them only when all admit it, so a refusal by one
limit costs the others nothing. Three algorithms:

- **QPS**: GCRA (the generic cell rate algorithm of ATM networks, as in redis-cell and
  Stripe's limiter). One key holds the theoretical arrival time (TAT, in ms); a request
  is admitted when ``TAT - now <= tolerance`` and moves the TAT one emission interval
  (``1000/qps`` ms) on. The tolerance is ``burst`` intervals: with ``burst = 1`` a
  steady stream above the rate is admitted at exactly the rate, and arrivals that jitter
  by up to an interval lose nothing.
- **Per day**: a counter per calendar day, keyed by the day in the quota's timezone,
  expiring a day after the day ends.
- **Concurrency**: a sorted set of leases (member: lease id, score: expiry in ms). A
  request takes a lease and gives it back when it ends; a lease a crashed gateway never
  gave back lapses after ``lease_ttl`` seconds.

The clock is the gateway's (passed in, so tests inject one); gateways must keep their
clocks in step (NTP), as every GCRA across hosts must. :class:`LocalCounts` runs the
same algorithms in memory: the fallback while Redis is unreachable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: ARGV: now_ms, lease id, lease ttl ms, then per key: kind ("r", "d" or "c"), a, b.
#:   r: a = emission interval (ms), b = tolerance (ms)
#:   d: a = the day's limit, b = ms until the day ends
#:   c: a = the concurrency limit, b = unused
#: Returns {0} when admitted, {1, index (1-based), wait_ms} when refused.
ADMIT_LUA = """
local now = tonumber(ARGV[1])
local lease = ARGV[2]
local lease_ttl = tonumber(ARGV[3])
local n = #KEYS
local tats = {}
for i = 1, n do
  local kind = ARGV[1 + 3 * i]
  local a = tonumber(ARGV[2 + 3 * i])
  local b = tonumber(ARGV[3 + 3 * i])
  local key = KEYS[i]
  if kind == "r" then
    local tat = tonumber(redis.call("GET", key)) or now
    if tat < now then tat = now end
    if tat - now > b then return {1, i, math.ceil(tat - b - now)} end
    tats[i] = tat
  elseif kind == "d" then
    local count = tonumber(redis.call("GET", key)) or 0
    if count >= a then return {1, i, math.ceil(b)} end
  else
    redis.call("ZREMRANGEBYSCORE", key, "-inf", now)
    if redis.call("ZCARD", key) >= a then
      local first = redis.call("ZRANGE", key, 0, 0, "WITHSCORES")
      local wait = 1000
      if first[2] then wait = tonumber(first[2]) - now end
      return {1, i, math.ceil(wait)}
    end
  end
end
for i = 1, n do
  local kind = ARGV[1 + 3 * i]
  local a = tonumber(ARGV[2 + 3 * i])
  local b = tonumber(ARGV[3 + 3 * i])
  local key = KEYS[i]
  if kind == "r" then
    local tat = tats[i] + a
    redis.call("SET", key, tostring(tat), "PX", math.ceil(tat - now) + 1000)
  elseif kind == "d" then
    if redis.call("INCR", key) == 1 then
      redis.call("PEXPIRE", key, math.ceil(b) + 86400000)
    end
  else
    redis.call("ZADD", key, now + lease_ttl, lease)
    redis.call("PEXPIRE", key, lease_ttl)
  end
end
return {0}
"""


@dataclass(frozen=True, slots=True)
class Step:
    """One limit of one request: what the script (or the local counts) checks."""

    #: ``r`` (QPS), ``d`` (per day) or ``c`` (concurrency).
    kind: str
    #: The counter's key (for ``d``, with the day in it).
    key: str
    #: r: emission interval ms; d, c: the limit.
    a: float
    #: r: tolerance ms; d: ms until the day ends; c: 0.
    b: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """Which step refused, and how long until it would admit (ms)."""

    index: int
    wait_ms: float


def script_args(steps: list[Step], now_ms: float, lease: str, lease_ttl_ms: float) -> list[Any]:
    args: list[Any] = [repr(now_ms), lease, repr(lease_ttl_ms)]
    for step in steps:
        args += (step.kind, repr(step.a), repr(step.b))
    return args


class LocalCounts:
    """The same three algorithms in this process's memory (the fallback)."""

    #: Keys kept before the oldest are dropped (each caller, route or day is one key).
    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._tats: dict[str, float] = {}
        self._days: dict[str, int] = {}
        self._leases: dict[str, dict[str, float]] = {}

    def admit(
        self, steps: list[Step], now_ms: float, lease: str, lease_ttl_ms: float
    ) -> Refusal | None:
        """Admit (and count) or refuse, exactly as :data:`ADMIT_LUA` does."""
        tats: list[float] = []
        for index, step in enumerate(steps):
            wait, tat = self._check(step, now_ms)
            if wait is not None:
                return Refusal(index, wait)
            tats.append(tat)
        self._bound()
        for step, tat in zip(steps, tats, strict=True):
            if step.kind == "r":
                self._tats[step.key] = tat + step.a
            elif step.kind == "d":
                self._days[step.key] = self._days.get(step.key, 0) + 1
            else:
                self._leases.setdefault(step.key, {})[lease] = now_ms + lease_ttl_ms
        return None

    def _check(self, step: Step, now_ms: float) -> tuple[float | None, float]:
        """(ms to wait, or None when it admits; the GCRA's arrival time for ``r``)."""
        if step.kind == "r":
            tat = max(self._tats.get(step.key, now_ms), now_ms)
            if tat - now_ms > step.b:
                return math.ceil(tat - step.b - now_ms), tat
            return None, tat
        if step.kind == "d":
            return (math.ceil(step.b) if self._days.get(step.key, 0) >= step.a else None), 0.0
        leases = self._leases.get(step.key)
        if leases:
            for held, until in list(leases.items()):
                if until <= now_ms:
                    del leases[held]
            if len(leases) >= step.a:
                return max(1.0, min(leases.values()) - now_ms), 0.0
        return None, 0.0

    def release(self, keys: list[str], lease: str) -> None:
        for key in keys:
            leases = self._leases.get(key)
            if leases is not None:
                leases.pop(lease, None)
                if not leases:
                    del self._leases[key]

    def _bound(self) -> None:
        for table in (self._tats, self._days, self._leases):
            if len(table) >= self.MAX_KEYS:
                table.clear()
