"""SQL of the posting core's records: transfers, holds and the cross-region outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.posting.records import (
    HOLD_PENDING,
    Hold,
    HoldStatus,
    OutboxItem,
    Transfer,
    TransferStatus,
)
from sv_money.tables import holds, outbox, transfers, utcnow

#: Outbox states.
OUTBOX_PENDING = "pending"
OUTBOX_DONE = "done"

# Built once: statements made per call would cost their construction and cache-key
# computation on every transfer.
_ADD_TRANSFER = insert(transfers)
_GET_TRANSFER = select(transfers).where(transfers.c.id == bindparam("transfer_id"))
_LOCK_TRANSFER = _GET_TRANSFER.with_for_update()
_HOLD_COLUMNS = tuple(c for c in holds.columns if c.name != "account_id")
_GET_HOLD = select(*_HOLD_COLUMNS).where(holds.c.id == bindparam("hold_id"))
_LOCK_HOLD = _GET_HOLD.with_for_update()
_GET_OUTBOX = select(outbox).where(outbox.c.transfer_id == bindparam("transfer_id"))
_LOCK_OUTBOX = _GET_OUTBOX.with_for_update()


def _transfer(row: Row[Any]) -> Transfer:
    return Transfer(**row._mapping)


def _transfer_values(t: Transfer) -> dict[str, object]:
    """The ``transfers`` row of ``t`` (all but ``seq``, which the table numbers)."""
    return {
        "id": t.id,
        "kind": t.kind,
        "status": t.status,
        "payer_id": t.payer_id,
        "payer_username": t.payer_username,
        "payer_region": t.payer_region,
        "payee_id": t.payee_id,
        "payee_username": t.payee_username,
        "payee_region": t.payee_region,
        "amount": t.amount,
        "fee": t.fee,
        "currency": t.currency,
        "memo": t.memo,
        "hold_id": t.hold_id,
        "entry_id": t.entry_id,
        "initiated_by": t.initiated_by,
        "failure_reason": t.failure_reason,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }


class TransferRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, transfer: Transfer) -> None:
        """Insert one transfer."""
        await self.conn.execute(_ADD_TRANSFER, _transfer_values(transfer))

    async def add_many(self, many: Sequence[Transfer]) -> None:
        """Insert transfers in one statement."""
        if many:
            await self.conn.execute(_ADD_TRANSFER, [_transfer_values(t) for t in many])

    async def get(self, transfer_id: str, *, lock: bool = False) -> Transfer | None:
        statement = _LOCK_TRANSFER if lock else _GET_TRANSFER
        row = (await self.conn.execute(statement, {"transfer_id": transfer_id})).first()
        return None if row is None else _transfer(row)

    async def set_status(
        self,
        transfer_id: str,
        status: TransferStatus,
        *,
        entry_id: int | None = None,
        failure_reason: str | None = None,
    ) -> None:
        """Move the transfer to ``status``, with the entry that settled it or why it failed."""
        values: dict[str, object] = {"status": status, "updated_at": utcnow()}
        if entry_id is not None:
            values["entry_id"] = entry_id
        if failure_reason is not None:
            values["failure_reason"] = failure_reason
        await self.conn.execute(
            update(transfers).where(transfers.c.id == transfer_id).values(values)
        )

    async def history(self, user_id: str, *, before: int | None, limit: int) -> list[Transfer]:
        """The user's movements, newest first, older than sequence number ``before``."""
        statement = select(transfers).where(
            or_(transfers.c.payer_id == user_id, transfers.c.payee_id == user_id)
        )
        if before is not None:
            statement = statement.where(transfers.c.seq < before)
        statement = statement.order_by(transfers.c.seq.desc()).limit(limit)
        return [_transfer(r) for r in await self.conn.execute(statement)]

    async def sent_page(
        self, region: str, to: str, *, after: str | None, limit: int
    ) -> list[Transfer]:
        """Transfers ``region`` made to users of region ``to``, by id, after ``after``."""
        statement = select(transfers).where(
            transfers.c.payer_region == region, transfers.c.payee_region == to
        )
        if after is not None:
            statement = statement.where(transfers.c.id > after)
        statement = statement.order_by(transfers.c.id).limit(limit)
        return [_transfer(r) for r in await self.conn.execute(statement)]

    async def sent(self, region: str, transfer_id: str) -> Transfer | None:
        """One transfer ``region`` made to a user of another region."""
        statement = select(transfers).where(
            transfers.c.id == transfer_id,
            transfers.c.payer_region == region,
            transfers.c.payee_region != region,
        )
        row = (await self.conn.execute(statement)).first()
        return None if row is None else _transfer(row)


class HoldRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def add(self, hold: Hold, *, account_id: int) -> None:
        """Insert ``hold``, reserving on the account ``account_id``."""
        await self.conn.execute(
            insert(holds).values(
                id=hold.id,
                kind=hold.kind,
                status=hold.status,
                account_id=account_id,
                owner_id=hold.owner_id,
                payee_id=hold.payee_id,
                payee_username=hold.payee_username,
                payee_region=hold.payee_region,
                currency=hold.currency,
                amount=hold.amount,
                captured=hold.captured,
                memo=hold.memo,
                transfer_id=hold.transfer_id,
                expires_at=hold.expires_at,
                created_at=hold.created_at,
                updated_at=hold.updated_at,
            )
        )

    async def get(self, hold_id: str, *, lock: bool = False) -> Hold | None:
        statement = _LOCK_HOLD if lock else _GET_HOLD
        row = (await self.conn.execute(statement, {"hold_id": hold_id})).first()
        return None if row is None else Hold(**row._mapping)

    async def set_status(
        self,
        hold_id: str,
        status: HoldStatus,
        *,
        captured: int | None = None,
        transfer_id: str | None = None,
    ) -> None:
        """Move the hold to ``status``; a capture also says how much and by which transfer."""
        values: dict[str, object] = {"status": status, "updated_at": utcnow()}
        if captured is not None:
            values["captured"] = captured
        if transfer_id is not None:
            values["transfer_id"] = transfer_id
        await self.conn.execute(update(holds).where(holds.c.id == hold_id).values(values))

    async def expired(self, now: datetime, *, limit: int) -> list[str]:
        """Ids of pending holds whose time is up, the longest expired first."""
        rows = await self.conn.execute(
            select(holds.c.id)
            .where(holds.c.status == HOLD_PENDING, holds.c.expires_at <= now)
            .order_by(holds.c.expires_at)
            .limit(limit)
        )
        return [str(r[0]) for r in rows]


class OutboxRepository:
    """Credits this region still has to get decided by the payee's region."""

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
                state=OUTBOX_PENDING,
                payload=payload,
                attempts=0,
                next_attempt_at=first_attempt,
                created_at=now,
                updated_at=now,
            )
        )

    async def get(self, transfer_id: str, *, lock: bool = False) -> OutboxItem | None:
        statement = _LOCK_OUTBOX if lock else _GET_OUTBOX
        row = (await self.conn.execute(statement, {"transfer_id": transfer_id})).first()
        return None if row is None else OutboxItem(**row._mapping)

    async def postpone(
        self, transfer_id: str, *, attempts: int, next_attempt_at: datetime, last_error: str
    ) -> None:
        """Record a failed delivery and when to try again."""
        await self.conn.execute(
            update(outbox)
            .where(outbox.c.transfer_id == transfer_id)
            .values(
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                last_error=last_error,
                updated_at=utcnow(),
            )
        )

    async def close(self, transfer_id: str) -> None:
        """The transfer is settled: nothing more to deliver."""
        await self.conn.execute(
            update(outbox)
            .where(outbox.c.transfer_id == transfer_id)
            .values(state=OUTBOX_DONE, updated_at=utcnow())
        )

    async def due(self, now: datetime, *, limit: int) -> list[str]:
        rows = await self.conn.execute(
            select(outbox.c.transfer_id)
            .where(outbox.c.state == OUTBOX_PENDING, outbox.c.next_attempt_at <= now)
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
        )
        return [str(r[0]) for r in rows]

    async def pending_count(self) -> int:
        rows = await self.conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.state == OUTBOX_PENDING)
        )
        return int(rows.scalar_one())
