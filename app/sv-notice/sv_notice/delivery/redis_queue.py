"""The delivery queue on Redis Streams.

- ``{ns}:deliveries`` is a stream read by the consumer group ``workers``: each entry
  goes to one instance and stays pending until acknowledged; entries an instance
  left pending longer than ``claim_idle`` are claimed by another (``XAUTOCLAIM``).
- ``{ns}:delayed`` is a sorted set of retries by due time; a mover script shifts
  due ids into the stream atomically.
- ``{ns}:waiting`` is the set of ids queued and not yet read, so the outbox sweep does
  not queue a backlog again and again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.exceptions import RedisError, ResponseError

from edgelib.backends.redis import connect_redis
from edgelib.tasks import cancel
from sv_notice.delivery.queue import Ticket

logger = logging.getLogger("sv_notice.queue")

GROUP = "workers"

# One script, so an id is never marked waiting without being queued (or the reverse).
_PUSH = """
local added = redis.call('SADD', KEYS[1], ARGV[1])
if added == 0 and ARGV[3] == '1' then
  return 0
end
local delay = tonumber(ARGV[2])
if delay <= 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'id', ARGV[1])
else
  redis.call('ZADD', KEYS[3], tonumber(ARGV[4]) + delay, ARGV[1])
end
return 1
"""

_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'id', id)
end
return #due
"""


class RedisStreamQueue:
    def __init__(
        self,
        url: str,
        namespace: str,
        consumer: str,
        *,
        claim_idle: float = 60.0,
        maxlen: int = 1_000_000,
        move_interval: float = 0.1,
    ) -> None:
        self.stream = f"{namespace}:deliveries"
        self.delayed = f"{namespace}:delayed"
        self.waiting = f"{namespace}:waiting"
        self.consumer = consumer
        self.claim_idle = claim_idle
        self.maxlen = maxlen
        self.move_interval = move_interval
        self._redis: Any = connect_redis(url, socket_connect_timeout=2)
        self._move: Any = self._redis.register_script(_MOVE_DUE)
        self._push: Any = self._redis.register_script(_PUSH)
        self._mover: asyncio.Task[None] | None = None
        self._next_claim = 0.0
        self._closing = False

    async def start(self) -> None:
        try:
            await self._redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._mover = asyncio.create_task(self._move_due())

    async def push(
        self, delivery_id: str, *, delay: float = 0.0, only_if_absent: bool = False
    ) -> None:
        await self._push(
            keys=[self.waiting, self.stream, self.delayed],
            args=[delivery_id, max(0.0, delay), int(only_if_absent), time.time(), self.maxlen],
        )

    async def pop(self, timeout: float) -> Ticket | None:
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + self.claim_idle / 4
            ticket = await self._claim_abandoned()
            if ticket is not None:
                return ticket
        reply = await self._redis.xreadgroup(
            GROUP,
            self.consumer,
            {self.stream: ">"},
            count=1,
            block=max(1, int(timeout * 1000)),
        )
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                ticket = _ticket(entry_id, fields)
                await self._redis.srem(self.waiting, ticket.delivery_id)
                return ticket
        return None

    async def _claim_abandoned(self) -> Ticket | None:
        reply = await self._redis.xautoclaim(
            self.stream,
            GROUP,
            self.consumer,
            min_idle_time=int(self.claim_idle * 1000),
            start_id="0-0",
            count=1,
        )
        entries = reply[1] if reply else []
        for entry_id, fields in entries:
            if fields:
                return _ticket(entry_id, fields)
        return None

    async def ack(self, ticket: Ticket) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.stream, GROUP, ticket.ref)
            pipe.xdel(self.stream, ticket.ref)
            await pipe.execute()

    async def _move_due(self) -> None:
        # Checks a flag as well as honouring cancellation: redis-py may turn a
        # cancellation that lands mid-command into a connection error.
        while not self._closing:
            try:
                moved = await self._move(
                    keys=[self.delayed, self.stream], args=[time.time(), 100, self.maxlen]
                )
                if moved:
                    continue
            except (RedisError, OSError) as exc:
                logger.warning("moving due retries failed", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.move_interval)

    async def close(self) -> None:
        self._closing = True
        await cancel(self._mover)
        await self._redis.aclose()


def _ticket(entry_id: Any, fields: Any) -> Ticket:
    ref = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    raw = fields.get(b"id") or fields.get("id") or b""
    return Ticket(raw.decode() if isinstance(raw, bytes) else str(raw), ref)
