"""The bootstrap's memory of the accounts it created (auth-jwt's own database)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from auth_jwt.models import BootstrapAccount, utcnow
from edgelib.db import Database
from edgelib.uow import unit_of_work


class BootstrapRecords:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def get(self, purpose: str) -> BootstrapAccount | None:
        async with self.database.sessions() as session:
            result = await session.execute(
                select(BootstrapAccount).where(BootstrapAccount.purpose == purpose)
            )
            return result.scalar_one_or_none()

    async def start(self, purpose: str, username: str, region: str) -> BootstrapAccount:
        """Choose and store the id of the account about to be created (committed first).

        Another instance starting at the same time may have stored one already: then
        that one is the account, and both ask for the same id.
        """
        record = BootstrapAccount(
            purpose=purpose,
            user_id=str(uuid.uuid4()),
            username=username,
            region=region,
            created_at=utcnow(),
        )
        try:
            async with unit_of_work(self.database) as session:
                session.add(record)
        except IntegrityError:
            existing = await self.get(purpose)
            if existing is None:
                raise
            return existing
        return record

    async def confirm(self, purpose: str) -> None:
        """sv-user stores the account under the remembered id."""
        async with unit_of_work(self.database) as session:
            record = await session.get(BootstrapAccount, purpose)
            if record is not None and record.confirmed_at is None:
                record.confirmed_at = utcnow()
