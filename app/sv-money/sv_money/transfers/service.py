"""Transfers between users: same-region in one transaction, cross-region through a hold."""

from __future__ import annotations

import base64
import binascii
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from edgelib.identity import Identity
from edgelib.peers import DirectoryClient
from edgelib.uow import Transactions
from sv_money.batching import GroupCommit
from sv_money.exceptions import AmountTooLarge
from sv_money.idempotency.repository import IdempotencyRepository
from sv_money.idempotency.service import fingerprint, recall
from sv_money.ledger.exceptions import BalanceLimit, InsufficientFunds
from sv_money.ledger.models import AccountKey, NewEntry
from sv_money.ledger.repository import LedgerRepository
from sv_money.ledger.service import Ledger, net_changes
from sv_money.metrics import TRANSFERS, refusal_outcome
from sv_money.notices import TransferNotices
from sv_money.posting.exceptions import SelfTransfer, TransferNotFound
from sv_money.posting.records import CAPTURING, COMPLETED, Hold, Movement, Transfer
from sv_money.posting.repository import TransferRepository, book_postgres
from sv_money.posting.schemas import TransferRead, transfer_read
from sv_money.posting.service import Delivery, Posting, payment_keys, payment_legs
from sv_money.regions import require_home
from sv_money.tables import utcnow
from sv_money.transfers.exceptions import BadCursor, KeyContended
from sv_money.transfers.schemas import TransferCreate, TransferPage


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


@dataclass(frozen=True, slots=True)
class Move:
    """A same-region transfer waiting to be booked."""

    scope: str
    key: str
    print_: str
    movement: Movement


class TransferService:
    def __init__(
        self,
        tx: Transactions,
        directory: DirectoryClient,
        delivery: Delivery,
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
        self.delivery = delivery
        self.region = region
        self.fee_bps = fee_bps
        self.max_amount = max_amount
        self.delivery_grace = delivery_grace
        self.batches: GroupCommit[Move, Transfer | None] = GroupCommit(
            tx, self.book, name="transfers"
        )
        #: The first step of cross-region transfers (hold, pending record, outbox row),
        #: booked together like same-region ones.
        self.sends: GroupCommit[Move, Transfer | None] = GroupCommit(
            tx, self.book_sends, name="cross-region-sends"
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the group commits while the context is open."""
        async with self.batches.running(), self.sends.running():
            yield

    def fee(self, amount: int) -> int:
        return amount * self.fee_bps // 10_000

    async def create(
        self, caller: Identity, body: TransferCreate, key: str
    ) -> tuple[TransferRead, bool]:
        """Move money from the caller to ``body.to_username``; (transfer, replayed)."""
        try:
            transfer, replayed = await self._create(caller, body, key)
        except Exception as exc:
            # Refused before or after the payee's region was known: not told apart.
            TRANSFERS.labels("any", refusal_outcome(exc)).inc()
            raise
        kind = "same_region" if transfer.to_region == transfer.from_region else "cross_region"
        TRANSFERS.labels(kind, "replayed" if replayed else transfer.status).inc()
        return transfer, replayed

    async def _create(
        self, caller: Identity, body: TransferCreate, key: str
    ) -> tuple[TransferRead, bool]:
        require_home(caller, self.region)
        if body.amount > self.max_amount:
            raise AmountTooLarge(f"at most {self.max_amount} minor units per transfer")
        payee = await self.directory.lookup(body.to_username)
        if payee.user_id == caller.user_id:
            raise SelfTransfer("a transfer needs two different users")
        self.delivery.require_reachable(payee.region)
        print_ = fingerprint("transfer", body.model_dump())
        here = payee.region == self.region
        # A transfer to another region is reserved by a hold until that region decides.
        hold_id = None if here else str(uuid.uuid4())
        movement = Movement(
            id=str(uuid.uuid4()),
            kind="transfer",
            payer_id=caller.user_id,
            payer_username=caller.username,
            payer_region=self.region,
            payee_id=payee.user_id,
            payee_username=payee.username,
            payee_region=payee.region,
            amount=body.amount,
            currency=body.currency,
            fee=self.fee(body.amount),
            memo=body.memo,
            hold_id=hold_id,
        )
        return await self._move(Move(caller.user_id, key, print_, movement))

    async def _existing(self, transfer_id: str) -> TransferRead:
        """A transfer as it is now, after a nudge if it is still crossing regions."""
        await self.delivery.deliver(transfer_id)
        found = await self.tx.read(lambda conn: TransferRepository(conn).get(transfer_id))
        assert found is not None
        return transfer_read(found)

    async def _move(self, move: Move) -> tuple[TransferRead, bool]:
        """A transfer, booked with whatever others are waiting (group commit); one to
        another region is then delivered with others to that region, and settled."""
        crossing = move.movement.hold_id is not None
        for _ in range(10):
            booked = await (self.sends if crossing else self.batches).submit(move)
            if booked is not None and crossing:
                return transfer_read(await self.delivery.settle(booked)), False
            if booked is not None:
                # submit() returns once the batch is committed: the payee is credited.
                self.notices.received(
                    transfer_id=booked.id,
                    payee_id=booked.payee_id,
                    region=self.region,
                    amount=booked.amount,
                    currency=booked.currency,
                    from_username=booked.payer_username or "",
                    memo=booked.memo,
                )
                return transfer_read(booked), False
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
    ) -> list[Transfer | Exception | None]:
        """Book same-region transfers in one transaction: per move, the transfer written,
        None if its key was taken already, or the refusal to raise to its caller."""
        results: list[Transfer | Exception | None] = [None] * len(moves)
        keys = IdempotencyRepository(conn)
        claimed = await keys.insert_many([(m.scope, m.key, m.print_, m.movement.id) for m in moves])
        active = [i for i, m in enumerate(moves) if m.movement.id in claimed]
        if not active:
            return results
        touched = [_account_keys(moves[i].movement) for i in active]
        ledger = Ledger(LedgerRepository(conn))
        opened = await ledger.open(*{k for ks in touched for k in ks})
        planned: list[NewEntry] = []
        booked: list[int] = []
        refused: list[tuple[str, str]] = []
        for i, accounts in zip(active, touched, strict=True):
            m = moves[i].movement
            try:
                legs = payment_legs(opened, accounts, m.amount, m.fee)
                planned.append(ledger.plan("transfer", legs, transfer_id=m.id))
            except (InsufficientFunds, BalanceLimit) as exc:
                results[i] = exc
                refused.append((moves[i].scope, moves[i].key))
                continue
            booked.append(i)
        if refused:
            await keys.delete_many(refused)  # nothing happened under these keys
        now = utcnow()
        if planned and conn.dialect.name == "postgresql":
            # One statement (one round trip) for all of the batch's writes.
            unnumbered = [Transfer.of(moves[i].movement, status=COMPLETED, at=now) for i in booked]
            entry_of = await book_postgres(conn, net_changes(planned), planned, unnumbered)
            written = [replace(t, entry_id=entry_of[t.id]) for t in unnumbered]
        else:
            entry_ids = await ledger.write(planned)
            written = [
                Transfer.of(moves[i].movement, status=COMPLETED, at=now, entry_id=entry_id)
                for i, entry_id in zip(booked, entry_ids, strict=True)
            ]
            await TransferRepository(conn).add_many(written)
        for i, transfer in zip(booked, written, strict=True):
            results[i] = transfer
        return results

    async def book_sends(
        self, conn: AsyncConnection, moves: Sequence[Move]
    ) -> list[Transfer | Exception | None]:
        """The first step of cross-region transfers, in one transaction: per move, hold
        the money and owe the credit (its pending record), None if its key was taken
        already, or the refusal to raise to its caller."""
        results: list[Transfer | Exception | None] = [None] * len(moves)
        keys = IdempotencyRepository(conn)
        claimed = await keys.insert_many([(m.scope, m.key, m.print_, m.movement.id) for m in moves])
        active = [i for i, m in enumerate(moves) if m.movement.id in claimed]
        if not active:
            return results
        posting = Posting(conn)
        payers = {i: _payer_key(moves[i].movement) for i in active}
        opened = await posting.ledger.open(*set(payers.values()))
        now = utcnow()
        reserved: list[tuple[int, int, int]] = []
        holds: list[tuple[Hold, int]] = []
        refused: list[tuple[str, str]] = []
        sent: list[int] = []
        for i in active:
            m = moves[i].movement
            account = opened[payers[i]]
            try:
                reserved.append(posting.ledger.plan_reserve(account, m.total))
            except InsufficientFunds as exc:
                results[i] = exc
                refused.append((moves[i].scope, moves[i].key))
                continue
            holds.append((_reservation(m, now), account.id))
            sent.append(i)
        if refused:
            await keys.delete_many(refused)  # nothing happened under these keys
        if sent:
            pending = await posting.send_many(
                [moves[i].movement for i in sent],
                reserved=holds,
                held=[(a, h) for a, _, h in net_changes([], *reserved)],
                origin=self.region,
                grace=self.delivery_grace,
            )
            for i, transfer in zip(sent, pending, strict=True):
                results[i] = transfer
        return results

    async def get(self, caller: Identity, transfer_id: str) -> TransferRead:
        """One movement the caller paid or received."""
        require_home(caller, self.region)
        found = await self.tx.read(lambda s: TransferRepository(s).get(transfer_id))
        if found is None or caller.user_id not in (found.payer_id, found.payee_id):
            raise TransferNotFound(f"no transfer {transfer_id} of yours")
        return transfer_read(found)

    async def history(self, caller: Identity, *, cursor: str | None, limit: int) -> TransferPage:
        """The caller's movements, newest first, a page at a time."""
        require_home(caller, self.region)
        before = decode_cursor(cursor) if cursor else None
        found = await self.tx.read(
            lambda s: TransferRepository(s).history(caller.user_id, before=before, limit=limit + 1)
        )
        page = found[:limit]
        last = page[-1].seq if len(found) > limit else None
        next_cursor = encode_cursor(last) if last is not None else None
        return TransferPage(items=[transfer_read(t) for t in page], next_cursor=next_cursor)


def _payer_key(m: Movement) -> AccountKey:
    if m.payer_id is None:
        raise ValueError("a transfer has a payer")
    return AccountKey.user(m.payer_id, m.currency)


def _reservation(m: Movement, now: datetime) -> Hold:
    """The hold that reserves a cross-region transfer's total until it is settled."""
    assert m.hold_id is not None
    assert m.payer_id is not None
    return Hold(
        id=m.hold_id,
        kind="transfer",
        status=CAPTURING,
        owner_id=m.payer_id,
        payee_id=m.payee_id,
        payee_username=m.payee_username,
        payee_region=m.payee_region,
        currency=m.currency,
        amount=m.total,
        captured=m.total,
        memo=m.memo,
        transfer_id=m.id,
        expires_at=None,
        created_at=now,
        updated_at=now,
    )


def _account_keys(m: Movement) -> tuple[AccountKey, ...]:
    """The payer's, the payee's and, with a fee, the ``fees`` account of a transfer."""
    if m.payer_id is None:
        raise ValueError("a transfer has a payer")
    payer = AccountKey.user(m.payer_id, m.currency)
    return payment_keys(payer, AccountKey.user(m.payee_id, m.currency), m.fee)
