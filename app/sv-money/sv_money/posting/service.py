"""The bookings more than one money domain makes, each inside the caller's transaction.

Lock order, everywhere: the hold, transfer and outbox rows the caller locked first, then
the accounts, in one statement in id order (:meth:`Ledger.open`), so no two
transactions deadlock on accounts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.ledger.models import FEES, Account, AccountKey
from sv_money.ledger.repository import LedgerRepository
from sv_money.ledger.service import Ledger
from sv_money.posting.records import (
    CAPTURED,
    CAPTURING,
    PENDING,
    Hold,
    HoldStatus,
    Movement,
    Transfer,
)
from sv_money.posting.repository import (
    HoldRepository,
    OutboxRepository,
    TransferRepository,
    outbox_rows,
    send_postgres,
)
from sv_money.posting.schemas import CreditRequest
from sv_money.tables import utcnow


class Delivery(Protocol):
    """Gets the payee region's decision on a credit the outbox owes (crossregion's service)."""

    def require_reachable(self, region: str) -> None:
        """Refuse to start what could never finish: money for a region with no known route."""

    async def deliver(self, transfer_id: str) -> bool:
        """Get the decision and settle the transfer; False if it is still open."""

    async def settle(self, transfer: Transfer) -> Transfer:
        """Deliver a transfer just sent with others to the same region (one call for many)
        and settle them together; the transfer as it stands then (still pending when the
        payee's region gave no decision: the recovery worker takes over)."""


def payment_keys(payer: AccountKey, to: AccountKey, fee: int) -> tuple[AccountKey, ...]:
    """The accounts a payment touches: the payer's, ``to`` and, with a fee, ``fees``."""
    if fee:
        return payer, to, AccountKey.system(FEES, payer.currency)
    return payer, to


def payment_legs(
    opened: Mapping[AccountKey, Account], keys: tuple[AccountKey, ...], amount: int, fee: int
) -> list[tuple[Account, int]]:
    """Payer pays amount and fee; ``to`` gets the amount; the fee goes to ``fees``."""
    payer, to, *fees = (opened[k] for k in keys)
    legs = [(payer, -(amount + fee)), (to, amount)]
    if fees:
        legs.append((fees[0], fee))
    return legs


def credit_request(movement: Movement | Transfer, *, origin: str) -> CreditRequest:
    """What the payee's region is asked to credit for ``movement`` (or its record)."""
    if movement.kind == "topup" or movement.payer_id is None or movement.payer_username is None:
        raise ValueError("only a user's payment crosses regions")
    kind: Literal["transfer", "capture"] = "capture" if movement.kind == "capture" else "transfer"
    return CreditRequest(
        origin_region=origin,
        kind=kind,
        payer_id=movement.payer_id,
        payer_username=movement.payer_username,
        payee_id=movement.payee_id,
        payee_username=movement.payee_username,
        payee_region=movement.payee_region,
        amount=movement.amount,
        currency=movement.currency,
        memo=movement.memo,
        # Only a capture names its hold to the payee's region; a transfer's own
        # reservation is this region's business.
        hold_id=movement.hold_id if kind == "capture" else None,
    )


class Posting:
    """Books movements, holds and owed credits on one connection (the caller's transaction)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.ledger = Ledger(LedgerRepository(conn))
        self.transfers = TransferRepository(conn)
        self.holds = HoldRepository(conn)
        self.outbox = OutboxRepository(conn)

    async def _owner(self, hold: Hold) -> tuple[AccountKey, Account]:
        key = AccountKey.user(hold.owner_id, hold.currency)
        return key, (await self.ledger.open(key))[key]

    async def reserve(self, hold: Hold) -> None:
        """Reserve what ``hold`` holds of its owner's available funds, and record it."""
        _, owner = await self._owner(hold)
        await self.ledger.reserve(owner, hold.reserved)
        await self.holds.add(hold, account_id=owner.id)

    async def release(self, hold: Hold, status: HoldStatus) -> None:
        """Give back all that ``hold`` reserves and close it as ``status``."""
        _, owner = await self._owner(hold)
        await self.ledger.release(owner, hold.reserved)
        await self.holds.set_status(hold.id, status)

    async def begin_capture(self, hold: Hold, *, amount: int, transfer_id: str) -> None:
        """Keep ``amount`` of a pending hold reserved for a capture crossing regions, and
        release the rest."""
        _, owner = await self._owner(hold)
        await self.ledger.release(owner, hold.reserved - amount)
        await self.holds.set_status(hold.id, CAPTURING, captured=amount, transfer_id=transfer_id)

    async def capture(
        self,
        hold: Hold,
        *,
        kind: str,
        transfer_id: str,
        amount: int,
        fee: int = 0,
        to: AccountKey,
    ) -> int:
        """Pay ``amount`` (and ``fee``) to ``to`` out of ``hold``, ending its reservation in
        the same entry; the entry's id."""
        keys = payment_keys(AccountKey.user(hold.owner_id, hold.currency), to, fee)
        opened = await self.ledger.open(*keys)
        entry_id = await self.ledger.post(
            kind,
            payment_legs(opened, keys, amount, fee),
            transfer_id=transfer_id,
            release={opened[keys[0]]: hold.reserved},
        )
        await self.holds.set_status(
            hold.id, CAPTURED, captured=amount + fee, transfer_id=transfer_id
        )
        return entry_id

    async def send_many(
        self,
        movements: Sequence[Movement],
        *,
        reserved: Sequence[tuple[Hold, int]],
        held: Sequence[tuple[int, int]],
        origin: str,
        grace: float,
    ) -> list[Transfer]:
        """The first step of cross-region transfers, written together: the ``held``
        ``(account id, delta)`` changes and ``reserved`` holds (with the account each
        reserves on) checked by the caller, and per movement its pending record and
        outbox row; the pending records."""
        now = utcnow()
        pending = [Transfer.of(m, status=PENDING, at=now) for m in movements]
        owed = [
            (m.id, m.payee_region, credit_request(m, origin=origin).model_dump_json())
            for m in movements
        ]
        first_attempt = now + timedelta(seconds=grace)
        if self.conn.dialect.name == "postgresql":
            # One statement (one round trip) for all of it.
            rows = outbox_rows(owed, first_attempt=first_attempt)
            await send_postgres(self.conn, held, reserved, pending, rows)
            return pending
        await self.ledger.repository.change([(a, 0, d) for a, d in held])
        await self.holds.add_many(reserved)
        await self.transfers.add_many(pending)
        await self.outbox.add_many(owed, first_attempt=first_attempt)
        return pending

    async def send(self, movement: Movement, *, origin: str, grace: float) -> None:
        """Record ``movement`` as pending and owe its credit to the payee's region.

        The recovery worker leaves the credit alone for ``grace`` seconds: the request
        that made it delivers it itself unless it dies first.
        """
        now = utcnow()
        await self.transfers.add(Transfer.of(movement, status=PENDING, at=now))
        await self.outbox.add(
            movement.id,
            peer_region=movement.payee_region,
            payload=credit_request(movement, origin=origin).model_dump_json(),
            first_attempt=now + timedelta(seconds=grace),
        )
