"""Registration of one service instance in the etcd registry.

The key is ``<prefix>/<service>/<region>/<instance>`` (``-`` for a global service's
region); the value is the :class:`~edgelib.discovery.model.Member` as JSON. The key is
attached to a lease of ``ttl`` seconds that the instance refreshes every ``ttl / 3``: a
crashed instance stops refreshing and etcd deletes its key when the lease runs out. A
graceful stop revokes the lease first (the key goes at once), then the server drains.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from edgelib.discovery.etcd import EtcdClient, EtcdError
from edgelib.discovery.model import Member
from edgelib.tasks import cancel

logger = logging.getLogger("edgelib.discovery")

GLOBAL_REGION = "-"


def member_key(prefix: str, member: Member) -> str:
    """Where ``member`` is registered: ``<prefix>/<service>/<region>/<instance>``."""
    region = member.region or GLOBAL_REGION
    return f"{prefix.rstrip('/')}/{member.service}/{region}/{member.instance}"


class Registrar:
    """Keeps one member registered while it runs: lease, key and keep-alive loop."""

    def __init__(
        self,
        etcd_url: str,
        member: Member,
        *,
        prefix: str = "/edge/services",
        ttl: int = 10,
        retry: float = 1.0,
    ) -> None:
        if ttl < 2:
            raise ValueError("the lease TTL must be at least 2 seconds")
        self.member = member
        self.key = member_key(prefix, member)
        self.ttl = ttl
        self.retry = retry
        self._etcd_url = etcd_url
        self._client: EtcdClient | None = None
        self._task: asyncio.Task[None] | None = None
        self.lease: int | None = None
        #: ``time.monotonic()`` of the last successful keep-alive (or registration).
        self.refreshed_at: float | None = None
        self.registrations = 0
        self.deregistered = False

    @property
    def registered(self) -> bool:
        return self.lease is not None and not self.deregistered

    async def start(self) -> None:
        """Register now if etcd answers, and keep the registration alive from then on.

        An unreachable etcd does not stop the service from starting: the loop keeps
        trying (every ``retry`` seconds) and registers as soon as etcd answers.
        """
        self._client = EtcdClient(self._etcd_url)
        try:
            await self._register()
        except EtcdError as exc:
            logger.warning("discovery: cannot register %s yet: %s", self.key, exc)
        self._task = asyncio.create_task(self._keep_alive(), name=f"discovery-keepalive:{self.key}")

    async def _register(self) -> None:
        assert self._client is not None
        lease = await self._client.grant(self.ttl)
        await self._client.put(self.key, orjson.dumps(self.member.to_json()), lease=lease)
        self.lease = lease
        self.refreshed_at = time.monotonic()
        self.registrations += 1
        logger.info(
            "discovery: registered %s (lease %x, ttl %ss)",
            self.key,
            lease,
            self.ttl,
            extra={"url": self.member.url},
        )

    async def _keep_alive(self) -> None:
        assert self._client is not None
        while True:
            await asyncio.sleep(self.retry if self.lease is None else self.ttl / 3)
            try:
                if self.lease is None:
                    await self._register()
                elif await self._client.keepalive(self.lease) <= 0:
                    # The lease ran out (etcd was away longer than the TTL): the key is
                    # gone, so register again under a new lease.
                    logger.warning("discovery: lease of %s expired; registering again", self.key)
                    self.lease = None
                    await self._register()
                else:
                    self.refreshed_at = time.monotonic()
            except EtcdError as exc:
                what = "registration" if self.lease is None else "keep-alive"
                logger.warning("discovery: %s of %s failed: %s", what, self.key, exc)

    async def stop(self, *, timeout: float = 2.0) -> None:
        """Deregister: stop the keep-alive and revoke the lease, which deletes the key."""
        if self.deregistered:
            return
        self.deregistered = True
        await self._cancel()
        if self._client is None:
            return
        try:
            if self.lease is not None:
                await asyncio.wait_for(self._client.revoke(self.lease), timeout)
                logger.info("discovery: deregistered %s", self.key)
        except (EtcdError, TimeoutError) as exc:
            # etcd will drop the key when the lease runs out instead.
            logger.warning("discovery: deregistering %s failed: %s", self.key, exc)
        finally:
            await self._client.aclose()

    async def abandon(self) -> None:
        """Stop refreshing without revoking, as a crash would: the lease runs out."""
        self.deregistered = True
        await self._cancel()
        if self._client is not None:
            await self._client.aclose()

    async def _cancel(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
