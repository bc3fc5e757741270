"""SQL of the payee side's decisions on cross-region transfers (the payer side's outbox
is the posting core's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.crossregion.records import Decision
from sv_money.posting.records import Outcome
from sv_money.tables import inbound, insert_ignoring_conflicts, utcnow

_SET_ENTRY = (
    update(inbound)
    .where(inbound.c.transfer_id == bindparam("b_id"))
    .values(entry_id=bindparam("b_entry_id"))
)


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

    async def claim_many(self, decisions: Sequence[dict[str, object]]) -> set[str]:
        """Record decisions (``inbound_transfers`` rows but ``created_at``) unless one
        exists for their transfer, in id order; the ids recorded now."""
        if not decisions:
            return set()
        now = utcnow()
        rows = await self.conn.execute(
            insert_ignoring_conflicts(self.conn.dialect.name, inbound, inbound.c.transfer_id),
            [
                d | {"created_at": now, "entry_id": None}
                for d in sorted(decisions, key=lambda d: str(d["transfer_id"]))
            ],
        )
        return {str(r[0]) for r in rows}

    async def get_many(self, ids: Sequence[str]) -> dict[str, Decision]:
        if not ids:
            return {}
        rows = await self.conn.execute(
            select(inbound).where(inbound.c.transfer_id.in_(bindparam("ids", expanding=True))),
            {"ids": list(ids)},
        )
        return {d.transfer_id: d for d in map(_decision, rows)}

    async def set_entries(self, entries: dict[str, int]) -> None:
        """The journal entries that credited transfers, by transfer id."""
        if entries:
            await self.conn.execute(
                _SET_ENTRY, [{"b_id": t, "b_entry_id": e} for t, e in entries.items()]
            )

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
