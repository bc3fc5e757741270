"""Following the etcd registry: list once, then watch by revision.

The watcher lists every key under the prefix (one :class:`Membership` replace), then
watches from the listing's revision plus one. A broken stream (etcd restarted, network)
is resumed from the last revision applied plus one, so nothing is missed or replayed.
A resume from a revision etcd has compacted away (seen by a count at that revision
before the watch, or as the watch's cancellation) lists in full again.
While etcd does not answer the membership is stale but keeps every member: an outage of
the registry must not empty the pools. A probe every ``probe_interval`` catches an etcd
that stopped answering without closing the stream.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from edgelib.discovery.etcd import EtcdClient, EtcdCompacted, EtcdError, KeyValue
from edgelib.discovery.model import Member, Membership
from edgelib.discovery.registrar import GLOBAL_REGION
from edgelib.tasks import cancel

logger = logging.getLogger("edgelib.discovery")


class EtcdWatcher:
    """The members registered under ``prefix``, kept current; use ``async with``."""

    def __init__(
        self,
        etcd_url: str,
        *,
        prefix: str = "/edge/services",
        retry: float = 0.2,
        max_retry: float = 2.0,
        probe_interval: float = 1.0,
    ) -> None:
        self.prefix = prefix.rstrip("/") + "/"
        self.membership = Membership(f"etcd:{self.prefix}")
        self.retry = retry
        self.max_retry = max_retry
        self.probe_interval = probe_interval
        self._client = EtcdClient(etcd_url, timeout=max(probe_interval, 0.5))
        self._tasks: list[asyncio.Task[None]] = []
        self._stream: asyncio.Task[None] | None = None
        #: The last revision applied (listing or event); the watch resumes after it.
        self.revision = 0
        #: Each watch start: the revision it asked for (the tests read it).
        self.watch_starts: list[int] = []
        self._by_key: dict[str, Member] = {}
        #: True while a watch stream is in place (created and not broken).
        self._watching = False

    async def __aenter__(self) -> EtcdWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="discovery-watch"),
            asyncio.create_task(self._probe(), name="discovery-probe"),
        ]

    async def aclose(self) -> None:
        await cancel(*self._tasks)
        self._tasks = []
        self.membership.close()
        await self._client.aclose()

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.membership.synced.wait(), timeout)

    def status(self) -> dict[str, Any]:
        return {**self.membership.status(), "revision": self.revision}

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.retry
        listed = False
        while True:
            try:
                if not listed:
                    await self._list()
                    listed = True
                await self._watch()
            except EtcdCompacted as exc:
                logger.warning(
                    "discovery: revision %d is gone (%s); listing again", self.revision + 1, exc
                )
                # Not current until the new listing and its watch are in place.
                self.membership.mark_stale(exc)
                listed = False
                continue
            except EtcdError as exc:
                self.membership.mark_stale(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_retry)
                continue
            delay = self.retry

    async def _list(self) -> None:
        revision, kvs = await self._client.get_prefix(self.prefix)
        members: list[Member] = []
        by_key: dict[str, Member] = {}
        for kv in kvs:
            member = self._decode(kv)
            if member is not None:
                members.append(member)
                by_key[kv.key] = member
        self._by_key = by_key
        self.membership.replace(members)
        self.revision = revision
        logger.info(
            "discovery: listed %d members under %s at revision %d",
            len(members),
            self.prefix,
            revision,
        )

    async def _watch(self) -> None:
        # A watch from a compacted revision is first "created", then canceled: check the
        # revision first, so the view is never called current on the way to a resync.
        await self._client.count_at(self.prefix, self.revision)
        start = self.revision + 1
        self.watch_starts.append(start)
        stream = self._client.watch_prefix(self.prefix, start)
        try:
            async for batch in stream:
                if batch.created:
                    # The watch is in place: everything up to now has been applied.
                    self._watching = True
                    self.membership.mark_fresh()
                for event in batch.events:
                    if event.kind == "put":
                        member = self._decode(event.kv)
                        if member is not None:
                            self._by_key[event.kv.key] = member
                            self.membership.upsert(member)
                    else:
                        gone = self._by_key.pop(event.kv.key, None)
                        if gone is not None:
                            self.membership.remove(gone)
                    self.revision = max(self.revision, event.kv.mod_revision)
                if not batch.events and not batch.created and batch.revision:
                    # A progress notification: no event up to this revision is pending.
                    self.revision = max(self.revision, batch.revision)
        finally:
            self._watching = False
            await stream.aclose()

    def _decode(self, kv: KeyValue) -> Member | None:
        parts = kv.key[len(self.prefix) :].split("/")
        try:
            if len(parts) != 3:
                raise ValueError("the key is not <service>/<region>/<instance>")
            member = Member.from_json(orjson.loads(kv.value))
            region = None if parts[1] == GLOBAL_REGION else parts[1]
            if (member.service, member.region, member.instance) != (parts[0], region, parts[2]):
                raise ValueError("the value names another service, region or instance")
        except (ValueError, orjson.JSONDecodeError) as exc:
            logger.warning("discovery: ignoring %s: %s", kv.key, exc)
            return None
        return member

    async def _probe(self) -> None:
        """Mark the view stale when etcd stops answering even though no stream broke."""
        while True:
            await asyncio.sleep(self.probe_interval)
            try:
                await self._client.status(timeout=self.probe_interval)
            except EtcdError as exc:
                self.membership.mark_stale(exc)
            else:
                if self._watching:
                    self.membership.mark_fresh()
