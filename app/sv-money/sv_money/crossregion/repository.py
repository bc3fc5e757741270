"""SQL of the cross-region outbox (payer side) and inbound decisions (payee side)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.tables import inbound, insert_ignoring_conflicts, outbox, transfers, utcnow

PENDING = "pending"
DONE = "done"


class OutboxRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(
        self, transfer_id: str, *, peer_region: str, payload: str, first_attempt: datetime
    ) -> None:
        now = utcnow()
        await self.conn.execute(
            insert(outbox).values(
                transfer_id=transfer_id,
                peer_region=peer_region,
                state=PENDING,
                payload=payload,
                attempts=0,
                next_attempt_at=first_attempt,
                created_at=now,
                updated_at=now,
            )
        )

    async def get(self, transfer_id: str, *, lock: bool = False) -> Row[Any] | None:
        statement = select(outbox).where(outbox.c.transfer_id == transfer_id)
        if lock:
            statement = statement.with_for_update()
        return (await self.conn.execute(statement)).first()

    async def set(self, transfer_id: str, **values: Any) -> None:
        values["updated_at"] = utcnow()
        await self.conn.execute(
            update(outbox).where(outbox.c.transfer_id == transfer_id).values(**values)
        )

    async def due(self, now: datetime, *, limit: int) -> list[str]:
        rows = await self.conn.execute(
            select(outbox.c.transfer_id)
            .where(outbox.c.state == PENDING, outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
        )
        return [r[0] for r in rows]

    async def pending_count(self) -> int:
        rows = await self.conn.execute(
            select(outbox.c.transfer_id).where(outbox.c.state == PENDING)
        )
        return len(rows.all())


class InboundRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def claim(self, transfer_id: str, **values: Any) -> bool:
        """Record a decision unless one exists (waits for a concurrent one to end)."""
        result = await self.conn.execute(
            insert_ignoring_conflicts(self.conn.dialect.name, inbound, inbound.c.transfer_id),
            {"transfer_id": transfer_id, "created_at": utcnow(), **values},
        )
        return result.first() is not None

    async def get(self, transfer_id: str) -> Row[Any] | None:
        statement = select(inbound).where(inbound.c.transfer_id == transfer_id)
        return (await self.conn.execute(statement)).first()

    async def set(self, transfer_id: str, **values: Any) -> None:
        await self.conn.execute(
            update(inbound).where(inbound.c.transfer_id == transfer_id).values(**values)
        )

    async def page(self, origin: str, *, after: str | None, limit: int) -> list[Row[Any]]:
        statement = select(inbound).where(inbound.c.origin_region == origin)
        if after is not None:
            statement = statement.where(inbound.c.transfer_id > after)
        statement = statement.order_by(inbound.c.transfer_id).limit(limit)
        return list((await self.conn.execute(statement)).all())


class SentRepository:
    """Transfers this region made to users of other regions."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    _columns = (
        transfers.c.id,
        transfers.c.payee_region,
        transfers.c.status,
        transfers.c.amount,
        transfers.c.currency,
        transfers.c.payee_id,
        transfers.c.created_at,
    )

    async def page(self, region: str, to: str, *, after: str | None, limit: int) -> list[Any]:
        statement = select(*self._columns).where(
            transfers.c.payer_region == region, transfers.c.payee_region == to
        )
        if after is not None:
            statement = statement.where(transfers.c.id > after)
        statement = statement.order_by(transfers.c.id).limit(limit)
        return list((await self.conn.execute(statement)).all())

    async def get(self, region: str, transfer_id: str) -> Any:
        statement = select(*self._columns).where(
            transfers.c.id == transfer_id,
            transfers.c.payer_region == region,
            transfers.c.payee_region != region,
        )
        return (await self.conn.execute(statement)).first()
