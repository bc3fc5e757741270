"""Holds: reserve funds (they stop being available), then capture all or part, or void.

A capture to a payee in another region is a cross-region transfer that starts from the
hold: the part not captured is released at once, the rest stays reserved (status
``capturing``) until the payee's region has decided. Holds past their ``expires_at``
are voided by :class:`HoldExpiry` (status ``expired``) and their funds released.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from edgelib.identity import Identity
from sv_money.exceptions import AmountTooLarge
from sv_money.holds.exceptions import (
    CaptureTooLarge,
    HoldClosed,
    HoldExpired,
    HoldNotFound,
    HoldTooLong,
)
from sv_money.holds.schemas import HoldCapture, HoldCreate, HoldRead, hold_read
from sv_money.idempotency.service import claim, fingerprint
from sv_money.ledger.models import AccountKey
from sv_money.metrics import HOLDS, refusal_outcome
from sv_money.peers import Directory
from sv_money.posting.exceptions import SelfTransfer
from sv_money.posting.records import (
    CAPTURED,
    CAPTURING,
    COMPLETED,
    EXPIRED,
    HOLD_PENDING,
    VOIDED,
    Hold,
    Movement,
    Transfer,
)
from sv_money.posting.repository import HoldRepository
from sv_money.posting.service import Delivery, Posting
from sv_money.regions import require_home
from sv_money.tables import utcnow
from sv_money.transactions import Transactions


class HoldService:
    def __init__(
        self,
        tx: Transactions,
        directory: Directory,
        delivery: Delivery,
        *,
        region: str,
        max_amount: int,
        default_ttl: float,
        max_ttl: float,
        delivery_grace: float,
    ) -> None:
        self.tx = tx
        self.directory = directory
        self.delivery = delivery
        self.region = region
        self.max_amount = max_amount
        self.default_ttl = default_ttl
        self.max_ttl = max_ttl
        self.delivery_grace = delivery_grace

    async def create(self, caller: Identity, body: HoldCreate, key: str) -> tuple[HoldRead, bool]:
        """Reserve funds for a payee; (hold, replayed)."""
        try:
            hold, replayed = await self._create(caller, body, key)
        except Exception as exc:
            HOLDS.labels("create", refusal_outcome(exc)).inc()
            raise
        HOLDS.labels("create", "replayed" if replayed else "ok").inc()
        return hold, replayed

    async def _create(self, caller: Identity, body: HoldCreate, key: str) -> tuple[HoldRead, bool]:
        require_home(caller, self.region)
        if body.amount > self.max_amount:
            raise AmountTooLarge(f"at most {self.max_amount} minor units per hold")
        ttl = float(body.expires_in) if body.expires_in is not None else self.default_ttl
        if ttl > self.max_ttl:
            raise HoldTooLong(f"a hold lasts at most {int(self.max_ttl)} seconds")
        payee = await self.directory.lookup(body.to_username)
        if payee.user_id == caller.user_id:
            raise SelfTransfer("a hold needs two different users")
        self.delivery.require_reachable(payee.region)
        hold_id = str(uuid.uuid4())
        print_ = fingerprint("hold", body.model_dump())

        async def work(conn: AsyncConnection) -> str | None:
            earlier = await claim(
                conn, scope=caller.user_id, key=key, print_=print_, resource_id=hold_id
            )
            if earlier is not None:
                return earlier
            now = utcnow()
            await Posting(conn).reserve(
                Hold(
                    id=hold_id,
                    kind="hold",
                    status=HOLD_PENDING,
                    owner_id=caller.user_id,
                    payee_id=payee.user_id,
                    payee_username=payee.username,
                    payee_region=payee.region,
                    currency=body.currency,
                    amount=body.amount,
                    captured=0,
                    memo=body.memo,
                    transfer_id=None,
                    expires_at=now + timedelta(seconds=ttl),
                    created_at=now,
                    updated_at=now,
                )
            )
            return None

        earlier = await self.tx.run(work)
        return await self._read(earlier or hold_id), earlier is not None

    async def _read(self, hold_id: str) -> HoldRead:
        hold = await self.tx.read(lambda s: HoldRepository(s).get(hold_id))
        assert hold is not None
        return hold_read(hold)

    async def _owned(self, conn: AsyncConnection, caller: Identity, hold_id: str) -> Hold:
        hold = await HoldRepository(conn).get(hold_id, lock=True)
        if hold is None or hold.kind != "hold" or hold.owner_id != caller.user_id:
            raise HoldNotFound(f"no hold {hold_id} of yours")
        return hold

    async def get(self, caller: Identity, hold_id: str) -> HoldRead:
        """One of the caller's holds."""
        require_home(caller, self.region)
        hold = await self.tx.read(lambda s: HoldRepository(s).get(hold_id))
        if hold is None or hold.kind != "hold" or hold.owner_id != caller.user_id:
            raise HoldNotFound(f"no hold {hold_id} of yours")
        return hold_read(hold)

    async def capture(self, caller: Identity, hold_id: str, body: HoldCapture) -> HoldRead:
        """Pay the payee all or part of the hold; asking again changes nothing."""
        try:
            hold = await self._capture(caller, hold_id, body)
        except Exception as exc:
            HOLDS.labels("capture", refusal_outcome(exc)).inc()
            raise
        HOLDS.labels("capture", "ok").inc()
        return hold

    async def _capture(self, caller: Identity, hold_id: str, body: HoldCapture) -> HoldRead:
        require_home(caller, self.region)

        async def work(conn: AsyncConnection) -> str | None:
            hold = await self._owned(conn, caller, hold_id)
            amount = body.amount if body.amount is not None else hold.amount
            if hold.status in (CAPTURED, CAPTURING):
                if body.amount is None or body.amount == hold.captured:
                    return hold.transfer_id if hold.status == CAPTURING else None
                raise HoldClosed(f"the hold was already captured for {hold.captured}")
            if hold.status != HOLD_PENDING:
                raise HoldClosed(f"the hold is {hold.status}")
            if hold.expires_at is not None and hold.expires_at <= utcnow():
                raise HoldExpired("the hold has expired; its funds are being released")
            if amount > hold.amount:
                raise CaptureTooLarge(f"the hold is for {hold.amount}")
            movement = self._capture_of(hold, caller, amount)
            posting = Posting(conn)
            if hold.payee_region == self.region:
                entry_id = await posting.capture(
                    hold,
                    kind="capture",
                    transfer_id=movement.id,
                    amount=amount,
                    to=AccountKey.user(hold.payee_id, hold.currency),
                )
                written = Transfer.of(movement, status=COMPLETED, at=utcnow(), entry_id=entry_id)
                await posting.transfers.add(written)
                return None
            await posting.begin_capture(hold, amount=amount, transfer_id=movement.id)
            await posting.send(movement, origin=self.region, grace=self.delivery_grace)
            return movement.id

        crossing = await self.tx.run(work)
        if crossing is not None:
            await self.delivery.deliver(crossing)
        return await self._read(hold_id)

    def _capture_of(self, hold: Hold, caller: Identity, amount: int) -> Movement:
        """The transfer a capture of ``amount`` makes."""
        return Movement(
            id=str(uuid.uuid4()),
            kind="capture",
            payer_id=hold.owner_id,
            payer_username=caller.username,
            payer_region=self.region,
            payee_id=hold.payee_id,
            payee_username=hold.payee_username,
            payee_region=hold.payee_region,
            amount=amount,
            currency=hold.currency,
            memo=hold.memo,
            hold_id=hold.id,
        )

    async def void(self, caller: Identity, hold_id: str) -> HoldRead:
        """Release the hold's funds; asking again changes nothing."""
        try:
            hold = await self._void(caller, hold_id)
        except Exception as exc:
            HOLDS.labels("void", refusal_outcome(exc)).inc()
            raise
        HOLDS.labels("void", "ok").inc()
        return hold

    async def _void(self, caller: Identity, hold_id: str) -> HoldRead:
        require_home(caller, self.region)

        async def work(conn: AsyncConnection) -> None:
            hold = await self._owned(conn, caller, hold_id)
            if hold.status in (VOIDED, EXPIRED):
                return
            if hold.status != HOLD_PENDING:
                raise HoldClosed(f"the hold is {hold.status}")
            await Posting(conn).release(hold, VOIDED)

        await self.tx.run(work)
        return await self._read(hold_id)

    async def expire_due(self, *, limit: int = 100) -> int:
        """Void the pending holds whose time is up, one transaction each; how many."""
        due = await self.tx.read(lambda s: HoldRepository(s).expired(utcnow(), limit=limit))
        expired = 0
        for hold_id in due:

            async def work(conn: AsyncConnection, hold_id: str = hold_id) -> bool:
                hold = await HoldRepository(conn).get(hold_id, lock=True)
                if hold is None or hold.status != HOLD_PENDING or _unexpired(hold):
                    return False  # captured or voided meanwhile
                await Posting(conn).release(hold, EXPIRED)
                return True

            expired += await self.tx.run(work)
        HOLDS.labels("expire", "ok").inc(expired)
        return expired


def _unexpired(hold: Hold) -> bool:
    return hold.expires_at is None or hold.expires_at > utcnow()
