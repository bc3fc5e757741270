"""SQL of holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.tables import holds, utcnow

PENDING = "pending"
CAPTURING = "capturing"
CAPTURED = "captured"
VOIDED = "voided"
EXPIRED = "expired"


class HoldRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, **values: Any) -> None:
        now = utcnow()
        values.setdefault("created_at", now)
        values.setdefault("updated_at", now)
        await self.conn.execute(insert(holds).values(**values))

    async def get(self, hold_id: str, *, lock: bool = False) -> Row[Any] | None:
        statement = select(holds).where(holds.c.id == hold_id)
        if lock:
            statement = statement.with_for_update()
        return (await self.conn.execute(statement)).first()

    async def set(self, hold_id: str, **values: Any) -> None:
        values["updated_at"] = utcnow()
        await self.conn.execute(update(holds).where(holds.c.id == hold_id).values(**values))

    async def expired(self, now: datetime, *, limit: int) -> list[str]:
        """Ids of pending holds whose time is up, the longest expired first."""
        rows = await self.conn.execute(
            select(holds.c.id)
            .where(holds.c.status == PENDING, holds.c.expires_at <= now)
            .order_by(holds.c.expires_at)
            .limit(limit)
        )
        return [r[0] for r in rows]
