"""The key ring: which key signs now, and which keys the JWKS publishes.

Shared by every request and by the rotation schedule, so it keeps its own database
sessions. Each instance re-reads the keys every ``reload_interval`` seconds, and the
JWKS is always served fresh, so a rotation made by one instance reaches the others
(and the gateways) in seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from auth_jwt.keys.crypto import PrivateKey, generate, seal, unseal
from auth_jwt.keys.repository import KeyRepository
from auth_jwt.models import SigningKey, utcnow
from edgelib.db import Database
from edgelib.uow import unit_of_work

logger = logging.getLogger("auth_jwt.keys")


@dataclass(frozen=True, slots=True)
class ActiveKey:
    kid: str
    alg: str
    private_key: PrivateKey
    created_at: datetime


class KeyRing:
    def __init__(
        self,
        database: Database,
        *,
        alg: str,
        passphrase: bytes,
        publish_after_retirement: float,
        reload_interval: float,
    ) -> None:
        self.database = database
        self.alg = alg
        self._passphrase = passphrase
        self.publish_after_retirement = timedelta(seconds=publish_after_retirement)
        self.reload_interval = reload_interval
        self._active: ActiveKey | None = None
        self._published: list[dict[str, Any]] = []
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Load the keys, making the first one when there is none."""
        await self.reload()
        if self._active is None:
            await self.rotate()

    async def reload(self) -> None:
        async with self._lock:
            await self._reload_locked()

    async def _reload_locked(self) -> None:
        async with self.database.sessions() as session:
            keys = await KeyRepository(session).published(utcnow())
        signing = [k for k in keys if k.retired_at is None]
        if signing:
            newest = signing[0]
            if self._active is None or self._active.kid != newest.kid:
                self._active = ActiveKey(
                    newest.kid,
                    newest.alg,
                    unseal(newest.private_pem, self._passphrase),
                    newest.created_at,
                )
        else:
            self._active = None
        self._published = [dict(k.public_jwk) for k in keys]
        self._loaded_at = time.monotonic()

    async def _fresh(self, max_age: float) -> None:
        if time.monotonic() - self._loaded_at > max_age:
            async with self._lock:
                if time.monotonic() - self._loaded_at > max_age:
                    await self._reload_locked()

    async def signing_key(self) -> ActiveKey:
        """The key new tokens are signed with."""
        await self._fresh(self.reload_interval)
        if self._active is None:
            await self.rotate()
        assert self._active is not None
        return self._active

    async def jwks(self, max_age: float = 1.0) -> dict[str, Any]:
        """The JWKS document: every key whose tokens may still be live."""
        await self._fresh(max_age)
        return {"keys": list(self._published)}

    async def rotate(self) -> ActiveKey:
        """Sign with a new key from now on; older keys stay published until their tokens expire."""
        material = generate(self.alg)
        now = utcnow()
        async with self._lock:
            async with unit_of_work(self.database) as session:
                repository = KeyRepository(session)
                await repository.add(
                    SigningKey(
                        kid=material.kid,
                        alg=material.alg,
                        private_pem=seal(material.private_key, self._passphrase),
                        public_jwk=material.public_jwk,
                        created_at=now,
                    )
                )
                retired = await repository.retire_all_but(
                    material.kid, now=now, publish_until=now + self.publish_after_retirement
                )
            await self._reload_locked()
        logger.info("signing key rotated", extra={"kid": material.kid, "retired": retired})
        assert self._active is not None
        return self._active

    async def purge(self) -> int:
        """Forget retired keys that no token can need any more."""
        async with unit_of_work(self.database) as session:
            removed = await KeyRepository(session).purge(utcnow())
        return removed
