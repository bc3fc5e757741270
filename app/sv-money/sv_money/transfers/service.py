"""Transfers between users: same-region in one transaction, cross-region through a hold."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from edgelib.identity import Identity
from sv_money.batching import GroupCommit
from sv_money.crossregion.schemas import CreditRequest
from sv_money.crossregion.service import CrossRegionService, enqueue
from sv_money.exceptions import AmountTooLarge
from sv_money.holds.repository import CAPTURING, HoldRepository
from sv_money.idempotency.repository import IdempotencyRepository
from sv_money.idempotency.service import claim, fingerprint, recall
from sv_money.ledger.exceptions import BalanceLimit, InsufficientFunds
from sv_money.ledger.models import FEES, Account, AccountKey, NewEntry
from sv_money.ledger.repository import LedgerRepository
from sv_money.ledger.service import Ledger
from sv_money.notices import TransferNotices
from sv_money.peers import Directory
from sv_money.regions import require_home
from sv_money.transactions import Transactions
from sv_money.transfers.exceptions import (
    BadCursor,
    KeyContended,
    SelfTransfer,
    TransferNotFound,
)
from sv_money.transfers.repository import TransferRepository
from sv_money.transfers.schemas import TransferCreate, TransferPage, TransferRead, transfer_read


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"t{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("t"):
            raise ValueError(raw)
        seq = int(raw[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadCursor("the cursor is not one this service gave out") from exc
    if seq < 0 or seq > 2**62:
        raise BadCursor("the cursor is not one this service gave out")
    return seq


class TransferService:
    def __init__(
        self,
        tx: Transactions,
        directory: Directory,
        crossregion: CrossRegionService,
        *,
        region: str,
        fee_bps: int,
        max_amount: int,
        delivery_grace: float,
        notices: TransferNotices | None = None,
    ) -> None:
        self.notices = notices or TransferNotices(None)
        self.tx = tx
        self.directory = directory
        self.crossregion = crossregion
        self.region = region
        self.fee_bps = fee_bps
        self.max_amount = max_amount
        self.delivery_grace = delivery_grace
        self.batches: GroupCommit[Move, dict[str, Any] | None] = GroupCommit(
            tx, self.book, name="transfers"
        )

    def fee(self, amount: int) -> int:
        return amount * self.fee_bps // 10_000

    async def create(
        self, caller: Identity, body: TransferCreate, key: str
    ) -> tuple[TransferRead, bool]:
        """Move money from the caller to ``body.to_username``; (transfer, replayed)."""
        require_home(caller, self.region)
        if body.amount > self.max_amount:
            raise AmountTooLarge(f"at most {self.max_amount} minor units per transfer")
        payee = await self.directory.lookup(body.to_username)
        if payee.user_id == caller.user_id:
            raise SelfTransfer("a transfer needs two different users")
        self.crossregion.require_reachable(payee.region)
        transfer_id = str(uuid.uuid4())
        print_ = fingerprint("transfer", body.model_dump())
        values: dict[str, Any] = {
            "id": transfer_id,
            "kind": "transfer",
            "payer_id": caller.user_id,
            "payer_username": caller.username,
            "payer_region": self.region,
            "payee_id": payee.user_id,
            "payee_username": payee.username,
            "payee_region": payee.region,
            "amount": body.amount,
            "fee": self.fee(body.amount),
            "currency": body.currency,
            "memo": body.memo,
        }
        if payee.region == self.region:
            return await self._move(Move(caller.user_id, key, print_, values))

        async def work(conn: AsyncConnection) -> str | None:
            earlier = await claim(
                conn, scope=caller.user_id, key=key, print_=print_, resource_id=transfer_id
            )
            if earlier is None:
                await self._reserve(conn, values)
            return earlier

        earlier = await self.tx.run(work)
        return await self._existing(earlier or transfer_id), earlier is not None

    async def _existing(self, transfer_id: str) -> TransferRead:
        """A transfer as it is now, after a nudge if it is still crossing regions."""
        await self.crossregion.deliver(transfer_id)
        row = await self.tx.read(lambda conn: TransferRepository(conn).get(transfer_id))
        assert row is not None
        return transfer_read(row)

    async def _move(self, move: Move) -> tuple[TransferRead, bool]:
        """A same-region transfer, booked with whatever others are waiting (group commit)."""
        for _ in range(10):
            booked = await self.batches.submit(move)
            if booked is not None:
                # submit() returns once the batch is committed: the payee is credited.
                self.notices.received(
                    transfer_id=booked["id"],
                    payee_id=booked["payee_id"],
                    region=self.region,
                    amount=booked["amount"],
                    currency=booked["currency"],
                    from_username=booked["payer_username"] or "",
                    memo=booked.get("memo"),
                )
                return transfer_read(SimpleNamespace(**booked)), False
            # The key was taken: replay what it made (or 422 for another request).
            earlier = await self.tx.read(
                lambda conn: recall(conn, scope=move.scope, key=move.key, print_=move.print_)
            )
            if earlier is not None:
                return await self._existing(earlier), True
            # It was given back meanwhile (its request was refused): try again.
        raise KeyContended("this Idempotency-Key keeps changing hands; retry the request")

    async def book(
        self, conn: AsyncConnection, moves: Sequence[Move]
    ) -> list[dict[str, Any] | Exception | None]:
        """Book same-region transfers in one transaction: per move, the transfer row written,
        None if its key was taken already, or the refusal to raise to its caller."""
        results: list[dict[str, Any] | Exception | None] = [None] * len(moves)
        keys = IdempotencyRepository(conn)
        claimed = await keys.insert_many(
            [(m.scope, m.key, m.print_, m.values["id"]) for m in moves]
        )
        active = [i for i, m in enumerate(moves) if m.values["id"] in claimed]
        if not active:
            return results
        ledger = Ledger(LedgerRepository(conn))
        opened = await ledger.open(*{k for i in active for k in _account_keys(moves[i].values)})
        planned: list[NewEntry] = []
        booked: list[int] = []
        refused: list[tuple[str, str]] = []
        for i in active:
            values = moves[i].values
            try:
                planned.append(
                    ledger.plan("transfer", _legs(values, opened), transfer_id=values["id"])
                )
            except (InsufficientFunds, BalanceLimit) as exc:
                results[i] = exc
                refused.append((moves[i].scope, moves[i].key))
                continue
            booked.append(i)
        if refused:
            await keys.delete_many(refused)  # nothing happened under these keys
        entry_ids = await ledger.write(planned)
        rows = await TransferRepository(conn).add_many(
            [
                moves[i].values | {"status": "completed", "entry_id": entry_id}
                for i, entry_id in zip(booked, entry_ids, strict=True)
            ]
        )
        for i, row in zip(booked, rows, strict=True):
            results[i] = row
        return results

    async def _reserve(self, conn: AsyncConnection, values: dict[str, Any]) -> None:
        """The first step of a cross-region transfer: hold the money, queue the credit."""
        currency = values["currency"]
        total = values["amount"] + values["fee"]
        payer_key = AccountKey.user(values["payer_id"], currency)
        ledger = Ledger(LedgerRepository(conn))
        payer = (await ledger.open(payer_key))[payer_key]
        await ledger.reserve(payer, total)
        hold_id = str(uuid.uuid4())
        await HoldRepository(conn).add(
            id=hold_id,
            kind="transfer",
            status=CAPTURING,
            account_id=payer.id,
            owner_id=values["payer_id"],
            payee_id=values["payee_id"],
            payee_username=values["payee_username"],
            payee_region=values["payee_region"],
            currency=currency,
            amount=total,
            captured=total,
            memo=values["memo"],
            transfer_id=values["id"],
        )
        await TransferRepository(conn).add(**values, status="pending", hold_id=hold_id)
        await enqueue(
            conn,
            values["id"],
            credit_request(values, origin=self.region),
            grace=self.delivery_grace,
        )

    async def get(self, caller: Identity, transfer_id: str) -> TransferRead:
        """One movement the caller paid or received."""
        require_home(caller, self.region)
        row = await self.tx.read(lambda s: TransferRepository(s).get(transfer_id))
        if row is None or caller.user_id not in (row.payer_id, row.payee_id):
            raise TransferNotFound(f"no transfer {transfer_id} of yours")
        return transfer_read(row)

    async def history(self, caller: Identity, *, cursor: str | None, limit: int) -> TransferPage:
        """The caller's movements, newest first, a page at a time."""
        require_home(caller, self.region)
        before = decode_cursor(cursor) if cursor else None
        rows = await self.tx.read(
            lambda s: TransferRepository(s).history(caller.user_id, before=before, limit=limit + 1)
        )
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1].seq) if len(rows) > limit else None
        return TransferPage(items=[transfer_read(r) for r in page], next_cursor=next_cursor)


@dataclass(frozen=True, slots=True)
class Move:
    """A same-region transfer waiting to be booked."""

    scope: str
    key: str
    print_: str
    values: dict[str, Any]


def _account_keys(values: dict[str, Any]) -> list[AccountKey]:
    currency = values["currency"]
    keys = [
        AccountKey.user(values["payer_id"], currency),
        AccountKey.user(values["payee_id"], currency),
    ]
    if values["fee"]:
        keys.append(AccountKey.system(FEES, currency))
    return keys


def _legs(values: dict[str, Any], opened: dict[AccountKey, Account]) -> list[tuple[Account, int]]:
    """Payer pays amount and fee; payee gets the amount; the fee goes to ``fees``."""
    payer, payee, *fees = (opened[k] for k in _account_keys(values))
    legs = [(payer, -(values["amount"] + values["fee"])), (payee, values["amount"])]
    if fees:
        legs.append((fees[0], values["fee"]))
    return legs


def credit_request(values: dict[str, Any], *, origin: str) -> CreditRequest:
    """What the payee's region is asked to credit for the transfer ``values`` describes."""
    return CreditRequest(
        origin_region=origin,
        kind=values["kind"],
        payer_id=values["payer_id"],
        payer_username=values["payer_username"],
        payee_id=values["payee_id"],
        payee_username=values["payee_username"],
        payee_region=values["payee_region"],
        amount=values["amount"],
        currency=values["currency"],
        memo=values["memo"],
        hold_id=values.get("hold_id"),
    )
