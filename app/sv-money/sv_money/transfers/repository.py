"""SQL of transfers: the record of each movement, and each user's history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.tables import transfers, utcnow

_ADD = insert(transfers)


class TransferRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, **values: Any) -> dict[str, Any]:
        """Insert one transfer; the row as written (every column but ``seq``)."""
        now = utcnow()
        written = {"created_at": now, "updated_at": now, "fee": 0} | values
        await self.conn.execute(_ADD, written)
        row: dict[str, Any] = dict.fromkeys(c.name for c in transfers.columns if c.name != "seq")
        row.update(written)
        return row

    async def add_many(self, many: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert transfers in one statement; the rows as written."""
        if not many:
            return []
        now = utcnow()
        written = [{"created_at": now, "updated_at": now, "fee": 0} | values for values in many]
        await self.conn.execute(_ADD, written)
        blank = dict.fromkeys(c.name for c in transfers.columns if c.name != "seq")
        return [blank | row for row in written]

    async def get(self, transfer_id: str, *, lock: bool = False) -> Row[Any] | None:
        statement = select(transfers).where(transfers.c.id == transfer_id)
        if lock:
            statement = statement.with_for_update()
        return (await self.conn.execute(statement)).first()

    async def set(self, transfer_id: str, **values: Any) -> None:
        values["updated_at"] = utcnow()
        await self.conn.execute(
            update(transfers).where(transfers.c.id == transfer_id).values(**values)
        )

    async def history(self, user_id: str, *, before: int | None, limit: int) -> list[Row[Any]]:
        """The user's movements, newest first, older than sequence number ``before``."""
        statement = select(transfers).where(
            or_(transfers.c.payer_id == user_id, transfers.c.payee_id == user_id)
        )
        if before is not None:
            statement = statement.where(transfers.c.seq < before)
        statement = statement.order_by(transfers.c.seq.desc()).limit(limit)
        return list((await self.conn.execute(statement)).all())
