"""SQL for contacts and preference switches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncSession

from sv_notice.models import contacts, preferences, upsert


class PreferenceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def contact(self, user_id: str) -> RowMapping | None:
        result = await self.session.execute(select(contacts).where(contacts.c.user_id == user_id))
        return result.mappings().first()

    async def put_contact(self, user_id: str, values: Mapping[str, Any], now: datetime) -> None:
        """Set the given fields of the user's contact row, creating it when missing."""
        row = {"user_id": user_id, **values, "updated_at": now}
        await self.session.execute(
            upsert(self._dialect, contacts, row, ["user_id"], [k for k in row if k != "user_id"])
        )

    async def switches(self, user_id: str, categories: Sequence[str]) -> Sequence[RowMapping]:
        result = await self.session.execute(
            select(preferences.c.category, preferences.c.channel, preferences.c.enabled).where(
                preferences.c.user_id == user_id, preferences.c.category.in_(list(categories))
            )
        )
        return result.mappings().all()

    async def all_switches(self, user_id: str) -> Sequence[RowMapping]:
        result = await self.session.execute(
            select(preferences.c.category, preferences.c.channel, preferences.c.enabled).where(
                preferences.c.user_id == user_id
            )
        )
        return result.mappings().all()

    async def put_switches(self, user_id: str, category: str, switches: Mapping[str, bool]) -> None:
        for channel, enabled in switches.items():
            row = {"user_id": user_id, "category": category, "channel": channel, "enabled": enabled}
            await self.session.execute(
                upsert(
                    self._dialect,
                    preferences,
                    row,
                    ["user_id", "category", "channel"],
                    ["enabled"],
                )
            )
