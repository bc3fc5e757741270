"""SQL of the audit: each check is one statement, so it sees one consistent state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, and_, case, func, literal, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.tables import accounts, entries, holds, postings, transfers


class AuditRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def count(self, table: Table) -> int:
        counted = await self.conn.execute(select(func.count()).select_from(table))
        return int(counted.scalar_one())

    async def unbalanced_entries(self) -> list[Any]:
        """Entries whose postings do not sum to zero, or that have fewer than two."""
        total = func.coalesce(func.sum(postings.c.amount), 0)
        legs = func.count(postings.c.id)
        statement = (
            select(entries.c.id, total.label("total"), legs.label("legs"))
            .select_from(entries.outerjoin(postings, postings.c.entry_id == entries.c.id))
            .group_by(entries.c.id)
            .having(or_(total != 0, legs < 2))
        )
        return list((await self.conn.execute(statement)).all())

    async def currency_mismatches(self) -> list[Any]:
        """Postings to an account of another currency than their entry's."""
        statement = (
            select(
                postings.c.id,
                postings.c.entry_id,
                accounts.c.currency.label("account_currency"),
                entries.c.currency.label("entry_currency"),
            )
            .join(entries, entries.c.id == postings.c.entry_id)
            .join(accounts, accounts.c.id == postings.c.account_id)
            .where(accounts.c.currency != entries.c.currency)
        )
        return list((await self.conn.execute(statement)).all())

    async def balance_mismatches(self) -> list[Any]:
        """Accounts whose balance is not the sum of their postings."""
        posted = func.coalesce(func.sum(postings.c.amount), 0)
        statement = (
            select(accounts.c.id, accounts.c.balance, posted.label("posted"))
            .select_from(accounts.outerjoin(postings, postings.c.account_id == accounts.c.id))
            .group_by(accounts.c.id, accounts.c.balance)
            .having(accounts.c.balance != posted)
        )
        return list((await self.conn.execute(statement)).all())

    async def held_mismatches(self) -> list[Any]:
        """Accounts whose held amount is not what their open holds reserve."""
        reserved = func.coalesce(
            func.sum(
                case(
                    (holds.c.status == "pending", holds.c.amount),
                    (holds.c.status == "capturing", holds.c.captured),
                    else_=literal(0),
                )
            ),
            0,
        )
        statement = (
            select(accounts.c.id, accounts.c.held, reserved.label("reserved"))
            .select_from(accounts.outerjoin(holds, holds.c.account_id == accounts.c.id))
            .group_by(accounts.c.id, accounts.c.held)
            .having(accounts.c.held != reserved)
        )
        return list((await self.conn.execute(statement)).all())

    async def overdrawn(self) -> list[Any]:
        """Accounts below zero that may not be, or holding a negative amount."""
        statement = select(
            accounts.c.id,
            accounts.c.owner_kind,
            accounts.c.owner,
            accounts.c.currency,
            accounts.c.balance,
            accounts.c.held,
        ).where(
            or_(
                accounts.c.held < 0,
                and_(
                    not_(accounts.c.allow_negative),
                    or_(accounts.c.balance < 0, accounts.c.balance - accounts.c.held < 0),
                ),
            )
        )
        return list((await self.conn.execute(statement)).all())

    async def completed_without_entry(self) -> list[str]:
        statement = select(transfers.c.id).where(
            transfers.c.status.in_(["completed", "reversed"]), transfers.c.entry_id.is_(None)
        )
        return [r[0] for r in await self.conn.execute(statement)]
