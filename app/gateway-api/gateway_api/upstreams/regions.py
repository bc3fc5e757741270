"""Region resolution: the token's region claim is a hint, sv-region's directory the truth.

Answers are cached per user with a TTL and dropped when sv-region announces a change
on the backend's ``edge.directory`` channel, so the steady state costs no network
round trip. When sv-region cannot answer, the token's claim is used (and cached only
briefly), so a directory outage does not take the whole platform down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import aiohttp
import orjson

from edgelib.backends import Backend
from edgelib.tasks import cancel, follow

if TYPE_CHECKING:
    from edgelib.identity import Identity
    from edgelib.signing import ServiceSigner
    from gateway_api.upstreams.pools import Pool

logger = logging.getLogger("gateway.regions")

DIRECTORY_CHANNEL = "edge.directory"


class RegionResolver:
    def __init__(
        self,
        *,
        pool: Pool | None,
        session: aiohttp.ClientSession,
        signer: ServiceSigner,
        backend: Backend | None,
        ttl: float = 60.0,
        fallback_ttl: float = 5.0,
        max_entries: int = 100_000,
    ) -> None:
        self.pool = pool
        self.session = session
        self.signer = signer
        self.backend = backend
        self.ttl = ttl
        self.fallback_ttl = fallback_ttl
        self.max_entries = max_entries
        self._cache: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[str]] = {}
        self._task: asyncio.Task[None] | None = None
        self.hits = 0
        self.misses = 0

    async def start(self) -> None:
        if self.backend is not None:
            self._task = asyncio.create_task(self._listen(), name="gateway-directory-events")

    async def stop(self) -> None:
        await cancel(self._task)

    async def _listen(self) -> None:
        assert self.backend is not None
        await follow(
            self.backend,
            DIRECTORY_CHANNEL,
            lambda message: self.invalidate(message.decode()),
            name="gateway-directory-events",
            on_subscribed=self._cache.clear,  # changes may have been missed meanwhile
        )

    def invalidate(self, user_id: str) -> None:
        """Forget one user's region ("*" forgets everyone)."""
        if user_id == "*":
            self._cache.clear()
        else:
            self._cache.pop(user_id, None)

    def cached(self, user_id: str) -> str | None:
        """The user's region while it is cached; None means "ask :meth:`region_of`"."""
        cached = self._cache.get(user_id)
        if cached is not None and cached[1] > time.monotonic():
            self.hits += 1
            return cached[0]
        return None

    async def region_of(self, identity: Identity) -> str:
        region = self.cached(identity.user_id)
        if region is not None:
            return region
        self.misses += 1
        pending = self._pending.get(identity.user_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending[identity.user_id] = future
        try:
            region, ttl = await self._lookup(identity)
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._pending[identity.user_id]
        self._store(identity.user_id, region, ttl)
        future.set_result(region)
        return region

    def _store(self, user_id: str, region: str, ttl: float) -> None:
        self._cache[user_id] = (region, time.monotonic() + ttl)
        self._cache.move_to_end(user_id)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def _lookup(self, identity: Identity) -> tuple[str, float]:
        instance = self.pool.choose("round_robin") if self.pool is not None else None
        if instance is None:
            return identity.region, self.fallback_ttl
        target = f"/internal/directory/users/{identity.user_id}"
        headers = self.signer.sign("GET", target, b"", destination="sv-region")
        try:
            async with self.session.get(
                instance.url + target,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=1.0),
            ) as resp:
                body = await resp.read()
                if resp.status == 200:
                    region = orjson.loads(body)["region"]
                    if isinstance(region, str) and region:
                        return region, self.ttl
                logger.warning(
                    "directory lookup failed",
                    extra={"status": resp.status, "user": identity.user_id},
                )
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            logger.warning("directory unreachable", extra={"error": type(exc).__name__})
        return identity.region, self.fallback_ttl
