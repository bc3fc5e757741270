"""Keeps the gateway's quotas in step with auth-rbac's (``/internal/quotas``).

The same two paths as the policy (:mod:`gateway_api.security.authz`): auth-rbac
publishes the new version on ``edge:rbac:quotas`` after each change (with Redis, every
gateway hears it at once), and the gateway polls ``/internal/quotas?since=<version>``
every ``quota_poll_interval`` seconds (the fallback, and the only path in the local
profile). Either way a change is in force within a second everywhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from edgelib.backends import Backend
from edgelib.tasks import TaskSet, follow, periodic
from gateway_api.security.authz import AuthRbac
from gateway_api.security.quotas import Quotas

logger = logging.getLogger("gateway.quotas")


class QuotaFollower:
    """Fetches the quotas when auth-rbac has a newer version, and installs them."""

    def __init__(
        self,
        quotas: Quotas,
        source: AuthRbac | None,
        *,
        backend: Backend | None,
        channel: str = "edge:rbac:quotas",
        poll_interval: float = 0.5,
    ) -> None:
        self.quotas = quotas
        self.source = source
        self.backend = backend
        self.channel = channel
        self.poll_interval = poll_interval
        self._lock = asyncio.Lock()
        self._tasks = TaskSet("gateway-quotas")
        self._source_ok: bool | None = None

    async def start(self, session: aiohttp.ClientSession | None) -> None:
        if self.source is None:
            return
        self.source.session = session
        await self.refresh()
        self._tasks.spawn(
            periodic(self.poll_interval, self.refresh, name="gateway-quota-poll"),
            name="gateway-quota-poll",
        )
        if self.backend is not None:
            self._tasks.spawn(
                follow(self.backend, self.channel, self._on_message, name="gateway-quota-listen"),
                name="gateway-quota-listen",
            )

    async def stop(self) -> None:
        await self._tasks.close()

    async def refresh(self, *, at_least: int | None = None) -> bool:
        """Fetch and install when auth-rbac has another version; False when that failed."""
        if self.source is None:
            return False
        version = self.quotas.book.version
        if at_least is not None and version >= at_least:
            return True
        async with self._lock:
            try:
                document: Mapping[str, Any] = await self.source.get_json(
                    f"/internal/quotas?since={self.quotas.book.version}"
                )
                if document.get("changed", True):
                    items = document.get("quotas")
                    new_version = document.get("version")
                    if not isinstance(items, list) or not isinstance(new_version, int):
                        raise ValueError("quota document without version or quotas")
                    self.quotas.install(new_version, items)
            except Exception as exc:
                if self._source_ok is not False:
                    logger.warning(
                        "quota source unavailable",
                        extra={"error": f"{type(exc).__name__}: {exc}"},
                    )
                self._source_ok = False
                return False
        self._source_ok = True
        return True

    async def _on_message(self, message: bytes) -> None:
        try:
            version = int(message)
        except ValueError:
            return
        await self.refresh(at_least=version)
