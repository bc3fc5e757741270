"""What each watching client should run, and the long poll that waits for it to change."""

from __future__ import annotations

import asyncio
import time

from edgelib.db import Database
from sv_config.content import types_of, values_of
from sv_config.repository import ConfigRepository
from sv_config.targeting import ClientIdentity, targets_match
from sv_config.watch.hub import WatchHub
from sv_config.watch.schemas import NamespaceSnapshot, WatchedNamespace, WatchRequest


class WatchService:
    def __init__(self, database: Database, hub: WatchHub, *, max_wait: float) -> None:
        self.database = database
        self.hub = hub
        self.max_wait = max_wait

    async def snapshots(
        self, environment: str, client: ClientIdentity, watched: list[WatchedNamespace]
    ) -> list[NamespaceSnapshot]:
        """The release each namespace gives this client: its gray one if targeted."""
        # A short session per look: a long poll must not hold a connection while it waits.
        async with self.database.sessions() as session:
            repository = ConfigRepository(session)
            return [await self._snapshot(repository, environment, client, w) for w in watched]

    async def _snapshot(
        self,
        repository: ConfigRepository,
        environment: str,
        client: ClientIdentity,
        watched: WatchedNamespace,
    ) -> NamespaceSnapshot:
        namespace = await repository.resolve(environment, watched.cluster, watched.name)
        release = None
        gray = False
        if namespace is not None:
            gray_row = await repository.gray(namespace.id)
            if gray_row is not None and targets_match(gray_row.targets, client):
                release = await repository.release_by_id(gray_row.release_id)
                gray = release is not None
            if release is None and namespace.current_release_id is not None:
                release = await repository.release_by_id(namespace.current_release_id)
        return NamespaceSnapshot(
            name=watched.name,
            environment=environment,
            cluster=watched.cluster,
            resolved_cluster=namespace.cluster if namespace else None,
            release_id=release.id if release else 0,
            release=release.number if release else 0,
            gray=gray,
            missing=namespace is None,
            values=values_of(release.content) if release else {},
            types=types_of(release.content) if release else {},
        )

    async def watch(self, request: WatchRequest) -> list[NamespaceSnapshot]:
        """The namespaces whose release for this client differs from what it knows.

        Waits (up to ``request.wait``, capped) for one to change; empty when none did.
        """
        client = ClientIdentity(
            request.client.instance, request.client.region, dict(request.client.labels)
        )
        deadline = time.monotonic() + min(request.wait, self.max_wait)
        keys = {(request.environment, w.name) for w in request.namespaces}
        with self.hub.listening(keys) as woken:
            while True:
                woken.clear()  # before looking, so a change during the look is not missed
                found = await self.snapshots(request.environment, client, request.namespaces)
                changed = [
                    snap
                    for snap, w in zip(found, request.namespaces, strict=True)
                    if snap.release_id != w.known
                ]
                remaining = deadline - time.monotonic()
                if changed or remaining <= 0 or self.hub.closed:
                    return changed
                try:
                    await asyncio.wait_for(woken.wait(), remaining)
                except TimeoutError:
                    return []
