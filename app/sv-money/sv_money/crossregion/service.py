"""Cross-region transfers, exactly once.

The payer's region reserves the money (a hold) and writes an outbox row in the same
transaction, then asks the payee's region to credit the payee under the transfer's id.
That region decides once and for all, atomically with the credit: ``credited`` or
``refused``; asking again returns the same decision. On ``credited`` the payer's region
captures the hold, on ``refused`` it voids it; either way in one transaction that also
closes the outbox row. A crash anywhere leaves an open outbox row, and the recovery
worker asks again until it has a decision. After ``outbox_abort_after`` seconds it stops
offering the credit and asks the payee's region to decide instead (``abort``): a
transfer not credited by then is refused there for good, so it can be voided here
without any chance of a late credit.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.crossregion.exceptions import TransferMismatch
from sv_money.crossregion.repository import (
    DONE,
    PENDING,
    InboundRepository,
    OutboxRepository,
    SentRepository,
)
from sv_money.crossregion.schemas import (
    AbortRequest,
    CreditOutcome,
    CreditRequest,
    InboundPage,
    InboundRecord,
    OutboundPage,
    OutboundRecord,
)
from sv_money.currencies import is_currency
from sv_money.exceptions import PeerProblem, PeerUnavailable
from sv_money.holds.repository import CAPTURED, VOIDED, HoldRepository
from sv_money.ledger.models import FEES, AccountKey, clearing
from sv_money.ledger.repository import LedgerRepository
from sv_money.ledger.service import Ledger
from sv_money.notices import TransferNotices
from sv_money.peers import MoneyPeers
from sv_money.tables import utcnow
from sv_money.transactions import Transactions
from sv_money.transfers.repository import TransferRepository

logger = logging.getLogger("sv_money.crossregion")

CREDITED = "credited"
REFUSED = "refused"


async def enqueue(
    conn: AsyncConnection, transfer_id: str, request: CreditRequest, *, grace: float
) -> None:
    """Record, in the caller's transaction, that ``request`` must reach the payee's region.

    The worker leaves the row alone for ``grace`` seconds: the request that made it
    delivers it itself unless it dies first.
    """
    await OutboxRepository(conn).add(
        transfer_id,
        peer_region=request.payee_region,
        payload=request.model_dump_json(),
        first_attempt=utcnow() + timedelta(seconds=grace),
    )


class CrossRegionService:
    def __init__(
        self,
        tx: Transactions,
        peers: MoneyPeers,
        *,
        region: str,
        abort_after: float,
        notices: TransferNotices | None = None,
    ) -> None:
        self.notices = notices or TransferNotices(None)
        self.tx = tx
        self.peers = peers
        self.region = region
        self.abort_after = timedelta(seconds=abort_after)

    # --- the payer's side -----------------------------------------------------

    def require_reachable(self, region: str) -> None:
        """Refuse to start what could never finish: money for a region with no known route."""
        if region != self.region and region not in self.peers:
            raise PeerUnavailable(f"region {region!r} is not reachable from region {self.region}")

    async def deliver(self, transfer_id: str) -> bool:
        """Get the payee region's decision and settle the transfer; False if still open."""
        row = await self.tx.read(lambda s: OutboxRepository(s).get(transfer_id))
        if row is None or row.state != PENDING:
            return True
        request = CreditRequest.model_validate_json(row.payload)
        give_up = utcnow() - row.created_at > self.abort_after
        try:
            if give_up:
                response = await self.peers.call(
                    row.peer_region,
                    "PUT",
                    f"/internal/transfers/{transfer_id}/abort",
                    json=AbortRequest(origin_region=self.region).model_dump(),
                )
            else:
                response = await self.peers.call(
                    row.peer_region,
                    "PUT",
                    f"/internal/transfers/{transfer_id}",
                    json=request.model_dump(),
                )
            outcome = CreditOutcome.model_validate(response.json())
        except (PeerUnavailable, PeerProblem, ValueError) as exc:
            attempts = int(row.attempts) + 1
            error = str(exc)[:200]
            delay = min(0.2 * 2 ** min(attempts, 10), 5.0)
            logger.warning(
                "cross-region transfer not settled yet",
                extra={"transfer_id": transfer_id, "attempts": attempts, "error": str(exc)},
            )

            async def postpone(conn: AsyncConnection) -> None:
                await OutboxRepository(conn).set(
                    transfer_id,
                    attempts=attempts,
                    next_attempt_at=utcnow() + timedelta(seconds=delay),
                    last_error=error,
                )

            await self.tx.run(postpone)
            return False
        await self.tx.run(lambda s: self._settle(s, transfer_id, outcome))
        return True

    async def _settle(
        self, conn: AsyncConnection, transfer_id: str, outcome: CreditOutcome
    ) -> None:
        """Capture (credited) or void (refused) the transfer's hold, and close the outbox row."""
        outbox = OutboxRepository(conn)
        row = await outbox.get(transfer_id, lock=True)
        if row is None or row.state != PENDING:
            return  # settled by someone else meanwhile
        transfers = TransferRepository(conn)
        holds = HoldRepository(conn)
        transfer = await transfers.get(transfer_id, lock=True)
        assert transfer is not None
        assert transfer.hold_id is not None
        hold = await holds.get(transfer.hold_id, lock=True)
        assert hold is not None
        ledger = Ledger(LedgerRepository(conn))
        currency = transfer.currency
        payer_key = AccountKey.user(transfer.payer_id, currency)
        if outcome.outcome == CREDITED:
            clearing_key = AccountKey.system(clearing(transfer.payee_region), currency)
            fees_key = AccountKey.system(FEES, currency)
            keys = [payer_key, clearing_key] + ([fees_key] if transfer.fee else [])
            opened = await ledger.open(*keys)
            payer = opened[payer_key]
            legs = [
                (payer, -(transfer.amount + transfer.fee)),
                (opened[clearing_key], transfer.amount),
            ]
            if transfer.fee:
                legs.append((opened[fees_key], transfer.fee))
            entry_id = await ledger.post(
                "xregion-out", legs, transfer_id=transfer_id, release={payer: hold.captured}
            )
            await holds.set(hold.id, status=CAPTURED)
            await transfers.set(transfer_id, status="completed", entry_id=entry_id)
        else:
            opened = await ledger.open(payer_key)
            await ledger.release(opened[payer_key], hold.captured)
            await holds.set(hold.id, status=VOIDED)
            await transfers.set(
                transfer_id,
                status="failed",
                failure_reason=(outcome.reason or "refused by the payee's region")[:200],
            )
        await outbox.set(transfer_id, state=DONE)

    async def due(self, *, limit: int = 100) -> list[str]:
        """Transfers whose delivery is due (the recovery worker's list)."""
        return await self.tx.read(lambda s: OutboxRepository(s).due(utcnow(), limit=limit))

    async def open_count(self) -> int:
        return await self.tx.read(lambda s: OutboxRepository(s).pending_count())

    # --- the payee's side -----------------------------------------------------

    def _refusal(self, request: CreditRequest) -> str | None:
        if request.payee_region != self.region:
            return f"the payee does not live in region {self.region}"
        if not is_currency(request.currency):
            return f"{request.currency} is not a currency this region keeps"
        if request.origin_region == self.region:
            return "a cross-region transfer must come from another region"
        return None

    async def receive(self, transfer_id: str, request: CreditRequest) -> CreditOutcome:
        """Credit the payee unless this transfer was decided before; the decision is final."""
        credited_now = False

        async def work(conn: AsyncConnection) -> CreditOutcome:
            nonlocal credited_now
            inbound = InboundRepository(conn)
            claimed = await inbound.claim(
                transfer_id,
                origin_region=request.origin_region,
                outcome=CREDITED,
                amount=request.amount,
                currency=request.currency,
                payee_id=request.payee_id,
            )
            if not claimed:
                earlier = await inbound.get(transfer_id)
                assert earlier is not None
                if earlier.outcome == CREDITED and (
                    earlier.amount != request.amount
                    or earlier.currency != request.currency
                    or earlier.payee_id != request.payee_id
                ):
                    raise TransferMismatch(f"transfer {transfer_id} was credited with other terms")
                return CreditOutcome(
                    transfer_id=transfer_id, outcome=earlier.outcome, reason=earlier.reason
                )
            reason = self._refusal(request)
            if reason is not None:
                await inbound.set(transfer_id, outcome=REFUSED, reason=reason)
                return CreditOutcome(transfer_id=transfer_id, outcome=REFUSED, reason=reason)
            ledger = Ledger(LedgerRepository(conn))
            clearing_key = AccountKey.system(clearing(request.origin_region), request.currency)
            payee_key = AccountKey.user(request.payee_id, request.currency)
            opened = await ledger.open(clearing_key, payee_key)
            entry_id = await ledger.post(
                "xregion-in",
                [(opened[clearing_key], -request.amount), (opened[payee_key], request.amount)],
                transfer_id=transfer_id,
            )
            await inbound.set(transfer_id, entry_id=entry_id)
            await TransferRepository(conn).add(
                id=transfer_id,
                kind=request.kind,
                status="completed",
                payer_id=request.payer_id,
                payer_username=request.payer_username,
                payer_region=request.origin_region,
                payee_id=request.payee_id,
                payee_username=request.payee_username,
                payee_region=request.payee_region,
                amount=request.amount,
                currency=request.currency,
                memo=request.memo,
                entry_id=entry_id,
            )
            credited_now = True
            return CreditOutcome(transfer_id=transfer_id, outcome=CREDITED)

        outcome = await self.tx.run(work)
        if credited_now:  # committed: tell the payee once
            self.notices.received(
                transfer_id=transfer_id,
                payee_id=request.payee_id,
                region=self.region,
                amount=request.amount,
                currency=request.currency,
                from_username=request.payer_username,
                memo=request.memo,
            )
        return outcome

    async def abort(self, transfer_id: str, request: AbortRequest) -> CreditOutcome:
        """Decide the transfer now: refused for good unless it was credited already."""

        async def work(conn: AsyncConnection) -> CreditOutcome:
            inbound = InboundRepository(conn)
            reason = "abandoned by its region of origin before it was credited"
            if await inbound.claim(
                transfer_id,
                origin_region=request.origin_region,
                outcome=REFUSED,
                amount=0,
                currency="",
                payee_id="",
                reason=reason,
            ):
                return CreditOutcome(transfer_id=transfer_id, outcome=REFUSED, reason=reason)
            earlier = await inbound.get(transfer_id)
            assert earlier is not None
            return CreditOutcome(
                transfer_id=transfer_id, outcome=earlier.outcome, reason=earlier.reason
            )

        return await self.tx.run(work)

    async def outbound_record(self, transfer_id: str) -> OutboundRecord | None:
        """This region's side of one transfer it made to another region's user."""
        row = await self.tx.read(lambda s: SentRepository(s).get(self.region, transfer_id))
        return None if row is None else _sent(row)

    async def outbound_page(self, to: str, *, after: str | None, limit: int) -> OutboundPage:
        """Transfers this region made to users of region ``to``, by transfer id."""
        rows = await self.tx.read(
            lambda s: SentRepository(s).page(self.region, to, after=after, limit=limit + 1)
        )
        items = [_sent(r) for r in rows[:limit]]
        next_after = items[-1].transfer_id if len(rows) > limit else None
        return OutboundPage(items=items, next_after=next_after)

    async def inbound_record(self, transfer_id: str) -> InboundRecord | None:
        """This region's decision on one transfer from another region."""
        row = await self.tx.read(lambda s: InboundRepository(s).get(transfer_id))
        return None if row is None else _record(row)

    async def inbound_page(self, origin: str, *, after: str | None, limit: int) -> InboundPage:
        """Decisions on transfers from ``origin``, by id (for the other region's audit)."""
        rows = await self.tx.read(
            lambda s: InboundRepository(s).page(origin, after=after, limit=limit + 1)
        )
        items = [_record(r) for r in rows[:limit]]
        next_after = items[-1].transfer_id if len(rows) > limit else None
        return InboundPage(items=items, next_after=next_after)


def _record(row: Any) -> InboundRecord:
    return InboundRecord(
        transfer_id=row.transfer_id,
        origin_region=row.origin_region,
        outcome=row.outcome,
        amount=row.amount,
        currency=row.currency,
        payee_id=row.payee_id,
    )


def _sent(row: Any) -> OutboundRecord:
    return OutboundRecord(
        transfer_id=row.id,
        payee_region=row.payee_region,
        status=row.status,
        amount=row.amount,
        currency=row.currency,
        payee_id=row.payee_id,
        created_at=row.created_at,
    )
