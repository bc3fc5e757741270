"""Periodic work: the key-rotation schedule and clean-up of expired records."""

from __future__ import annotations

import asyncio
import logging

from auth_jwt.keys.ring import KeyRing
from auth_jwt.models import utcnow
from auth_jwt.sessions.repository import SessionRepository
from edgelib.backends import Backend, BackendError
from edgelib.db import Database
from edgelib.uow import unit_of_work

logger = logging.getLogger("auth_jwt.maintenance")

ROTATION_LOCK = "auth:keys:rotation-lock"


class Maintenance:
    def __init__(
        self,
        keys: KeyRing,
        database: Database,
        backend: Backend,
        *,
        rotation_interval: float,
        interval: float,
    ) -> None:
        self.keys = keys
        self.database = database
        self.backend = backend
        self.rotation_interval = rotation_interval
        self.interval = interval

    async def rotate_if_due(self) -> bool:
        """Rotate when the signing key is older than the interval (one instance does it)."""
        if self.rotation_interval <= 0:
            return False
        await self.keys.reload()
        key = await self.keys.signing_key()
        if (utcnow() - key.created_at).total_seconds() < self.rotation_interval:
            return False
        try:
            first = await self.backend.set(
                ROTATION_LOCK,
                b"1",
                ttl=min(self.interval, self.rotation_interval),
                only_if_absent=True,
            )
        except BackendError:
            first = True
        if first:
            await self.keys.rotate()
        return first

    async def purge(self) -> None:
        await self.keys.purge()
        async with unit_of_work(self.database) as session:
            await SessionRepository(session).purge(utcnow())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.rotate_if_due()
                await self.purge()
            except Exception:
                logger.exception("maintenance failed; retrying next round")
