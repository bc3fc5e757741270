"""SQL of the payee side's decisions on cross-region transfers (the payer side's outbox
is the posting core's)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.crossregion.records import Decision
from sv_money.posting.records import Outcome
from sv_money.tables import inbound, insert_ignoring_conflicts, utcnow


def _decision(row: Row[Any]) -> Decision:
    return Decision(**row._mapping)


class InboundRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def claim(
        self,
        transfer_id: str,
        *,
        origin_region: str,
        outcome: Outcome,
        amount: int,
        currency: str,
        payee_id: str,
        reason: str | None = None,
    ) -> bool:
        """Record a decision unless one exists (waits for a concurrent one to end)."""
        result = await self.conn.execute(
            insert_ignoring_conflicts(self.conn.dialect.name, inbound, inbound.c.transfer_id),
            {
                "transfer_id": transfer_id,
                "origin_region": origin_region,
                "outcome": outcome,
                "amount": amount,
                "currency": currency,
                "payee_id": payee_id,
                "reason": reason,
                "created_at": utcnow(),
            },
        )
        return result.first() is not None

    async def get(self, transfer_id: str) -> Decision | None:
        statement = select(inbound).where(inbound.c.transfer_id == transfer_id)
        row = (await self.conn.execute(statement)).first()
        return None if row is None else _decision(row)

    async def refuse(self, transfer_id: str, reason: str) -> None:
        """Turn the decision just claimed into a refusal."""
        await self.conn.execute(
            update(inbound)
            .where(inbound.c.transfer_id == transfer_id)
            .values(outcome="refused", reason=reason)
        )

    async def set_entry(self, transfer_id: str, entry_id: int) -> None:
        """The journal entry that credited the transfer."""
        await self.conn.execute(
            update(inbound).where(inbound.c.transfer_id == transfer_id).values(entry_id=entry_id)
        )

    async def page(self, origin: str, *, after: str | None, limit: int) -> list[Decision]:
        statement = select(inbound).where(inbound.c.origin_region == origin)
        if after is not None:
            statement = statement.where(inbound.c.transfer_id > after)
        statement = statement.order_by(inbound.c.transfer_id).limit(limit)
        return [_decision(r) for r in await self.conn.execute(statement)]
