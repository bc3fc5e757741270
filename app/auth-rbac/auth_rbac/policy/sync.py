"""Keeps this instance's policy snapshot in step with the database.

Every change bumps ``rbac_policy_version`` in its own transaction. After the commit
the writing instance reloads and publishes the new version on the backend's pub/sub
channel; other instances (and gateways) reload when they hear it. Pub/sub is Redis in
production and per-process in the local profile, so every instance also polls the
version row: a lost message, a Redis outage or the local profile all converge within
one poll interval.
"""

from __future__ import annotations

import asyncio
import logging

from auth_rbac.policy.enforcer import PolicySnapshot
from auth_rbac.policy.repository import PolicyRepository
from edgelib.backends import Backend, BackendError
from edgelib.db import Database
from edgelib.tasks import TaskSet, follow, periodic

logger = logging.getLogger("auth_rbac.sync")

#: Pub/sub channel carrying the new policy version (ASCII digits) after each change.
POLICY_CHANNEL = "edge:rbac:policy"


class PolicySync:
    """The current :class:`PolicySnapshot`, refreshed by polling and by notifications."""

    def __init__(
        self,
        database: Database,
        backend: Backend,
        *,
        poll_interval: float = 0.5,
        channel: str = POLICY_CHANNEL,
    ) -> None:
        self.database = database
        self.backend = backend
        self.poll_interval = poll_interval
        self.channel = channel
        self._snapshot: PolicySnapshot | None = None
        self._lock = asyncio.Lock()
        self._tasks = TaskSet("rbac-policy")

    @property
    def snapshot(self) -> PolicySnapshot:
        assert self._snapshot is not None, "policy not loaded yet"
        return self._snapshot

    async def start(self) -> None:
        """Load the policy, then follow changes in the background."""
        await self.refresh()
        if self._tasks.closed:
            self._tasks = TaskSet("rbac-policy")
        self._tasks.spawn(
            periodic(
                self.poll_interval,
                self.refresh,
                name="rbac-policy-poll",
                first_after=self.poll_interval,
            ),
            name="rbac-policy-poll",
        )
        self._tasks.spawn(
            follow(self.backend, self.channel, self._on_message, name="rbac-policy-listen"),
            name="rbac-policy-listen",
        )

    async def stop(self) -> None:
        await self._tasks.close()

    async def refresh(self, *, at_least: int | None = None) -> PolicySnapshot:
        """Reload when the database holds a newer version than ours (one reload at a time)."""
        current = self._snapshot
        if current is not None and at_least is not None and current.version >= at_least:
            return current
        async with self._lock:
            async with self.database.sessions() as session:
                repo = PolicyRepository(session)
                # Version first: rules read afterwards are at least that new, so a change
                # committed in between is picked up by the next refresh, never skipped.
                version = await repo.version()
                current = self._snapshot
                if current is not None and version <= current.version:
                    return current
                rules = await repo.load_rules()
            snapshot = await asyncio.to_thread(PolicySnapshot.build, version, rules)
            self._snapshot = snapshot
        logger.info(
            "policy loaded",
            extra={
                "version": snapshot.version,
                "rules": len(snapshot.rules),
                "build_ms": round(snapshot.built_ms, 1),
            },
        )
        return snapshot

    async def announce(self, version: int) -> None:
        """Tell other instances and gateways that ``version`` is committed."""
        try:
            await self.backend.publish(self.channel, str(version).encode())
        except BackendError as exc:
            # Polling still carries the change; a lost notification only costs latency.
            logger.warning("policy notification failed", extra={"error": str(exc)})

    async def after_change(self) -> PolicySnapshot:
        """Called once a change is committed: reload here, then notify everyone else."""
        snapshot = await self.refresh()
        await self.announce(snapshot.version)
        return snapshot

    async def _on_message(self, message: bytes) -> None:
        try:
            version = int(message)
        except ValueError:
            return
        await self.refresh(at_least=version)
