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

from sqlalchemy.ext.asyncio import AsyncConnection

from edgelib.peers import PeerProblem, PeerUnavailable
from edgelib.uow import Transactions
from sv_money.crossregion.exceptions import TransferMismatch
from sv_money.crossregion.records import CREDITED, REFUSED, Decision
from sv_money.crossregion.repository import InboundRepository
from sv_money.crossregion.schemas import AbortRequest, CreditOutcome
from sv_money.currencies import is_currency
from sv_money.ledger.models import AccountKey, clearing
from sv_money.notices import TransferNotices
from sv_money.peers import MoneyPeers
from sv_money.posting.records import COMPLETED, FAILED, VOIDED, Movement, Transfer
from sv_money.posting.repository import OUTBOX_PENDING, OutboxRepository, TransferRepository
from sv_money.posting.schemas import (
    CreditRequest,
    InboundPage,
    InboundRecord,
    OutboundPage,
    OutboundRecord,
)
from sv_money.posting.service import Posting
from sv_money.tables import utcnow

logger = logging.getLogger("sv_money.crossregion")


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
        item = await self.tx.read(lambda s: OutboxRepository(s).get(transfer_id))
        if item is None or item.state != OUTBOX_PENDING:
            return True
        request = CreditRequest.model_validate_json(item.payload)
        give_up = utcnow() - item.created_at > self.abort_after
        try:
            if give_up:
                response = await self.peers.call(
                    item.peer_region,
                    "PUT",
                    f"/internal/transfers/{transfer_id}/abort",
                    json=AbortRequest(origin_region=self.region).model_dump(),
                )
            else:
                response = await self.peers.call(
                    item.peer_region,
                    "PUT",
                    f"/internal/transfers/{transfer_id}",
                    json=request.model_dump(),
                )
            outcome = CreditOutcome.model_validate(response.json())
        except (PeerUnavailable, PeerProblem, ValueError) as exc:
            attempts = item.attempts + 1
            error = str(exc)[:200]
            delay = min(0.2 * 2 ** min(attempts, 10), 5.0)
            logger.warning(
                "cross-region transfer not settled yet",
                extra={"transfer_id": transfer_id, "attempts": attempts, "error": str(exc)},
            )

            async def postpone(conn: AsyncConnection) -> None:
                await OutboxRepository(conn).postpone(
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
        posting = Posting(conn)
        item = await posting.outbox.get(transfer_id, lock=True)
        if item is None or item.state != OUTBOX_PENDING:
            return  # settled by someone else meanwhile
        transfer = await posting.transfers.get(transfer_id, lock=True)
        assert transfer is not None
        assert transfer.hold_id is not None
        hold = await posting.holds.get(transfer.hold_id, lock=True)
        assert hold is not None
        if outcome.outcome == CREDITED:
            entry_id = await posting.capture(
                hold,
                kind="xregion-out",
                transfer_id=transfer_id,
                amount=transfer.amount,
                fee=transfer.fee,
                to=AccountKey.system(clearing(transfer.payee_region), transfer.currency),
            )
            await posting.transfers.set_status(transfer_id, COMPLETED, entry_id=entry_id)
        else:
            await posting.release(hold, VOIDED)
            await posting.transfers.set_status(
                transfer_id,
                FAILED,
                failure_reason=(outcome.reason or "refused by the payee's region")[:200],
            )
        await posting.outbox.close(transfer_id)

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
                await inbound.refuse(transfer_id, reason)
                return CreditOutcome(transfer_id=transfer_id, outcome=REFUSED, reason=reason)
            posting = Posting(conn)
            clearing_key = AccountKey.system(clearing(request.origin_region), request.currency)
            payee_key = AccountKey.user(request.payee_id, request.currency)
            opened = await posting.ledger.open(clearing_key, payee_key)
            entry_id = await posting.ledger.post(
                "xregion-in",
                [(opened[clearing_key], -request.amount), (opened[payee_key], request.amount)],
                transfer_id=transfer_id,
            )
            await inbound.set_entry(transfer_id, entry_id)
            await posting.transfers.add(
                Transfer.of(
                    _received(transfer_id, request),
                    status=COMPLETED,
                    at=utcnow(),
                    entry_id=entry_id,
                )
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
        sent = await self.tx.read(lambda s: TransferRepository(s).sent(self.region, transfer_id))
        return None if sent is None else _sent(sent)

    async def outbound_page(self, to: str, *, after: str | None, limit: int) -> OutboundPage:
        """Transfers this region made to users of region ``to``, by transfer id."""
        rows = await self.tx.read(
            lambda s: TransferRepository(s).sent_page(self.region, to, after=after, limit=limit + 1)
        )
        items = [_sent(r) for r in rows[:limit]]
        next_after = items[-1].transfer_id if len(rows) > limit else None
        return OutboundPage(items=items, next_after=next_after)

    async def inbound_record(self, transfer_id: str) -> InboundRecord | None:
        """This region's decision on one transfer from another region."""
        decision = await self.tx.read(lambda s: InboundRepository(s).get(transfer_id))
        return None if decision is None else _record(decision)

    async def inbound_page(self, origin: str, *, after: str | None, limit: int) -> InboundPage:
        """Decisions on transfers from ``origin``, by id (for the other region's audit)."""
        rows = await self.tx.read(
            lambda s: InboundRepository(s).page(origin, after=after, limit=limit + 1)
        )
        items = [_record(r) for r in rows[:limit]]
        next_after = items[-1].transfer_id if len(rows) > limit else None
        return InboundPage(items=items, next_after=next_after)


def _received(transfer_id: str, request: CreditRequest) -> Movement:
    """The movement a credit from another region makes here."""
    return Movement(
        id=transfer_id,
        kind=request.kind,
        payer_id=request.payer_id,
        payer_username=request.payer_username,
        payer_region=request.origin_region,
        payee_id=request.payee_id,
        payee_username=request.payee_username,
        payee_region=request.payee_region,
        amount=request.amount,
        currency=request.currency,
        memo=request.memo,
    )


def _record(d: Decision) -> InboundRecord:
    return InboundRecord(
        transfer_id=d.transfer_id,
        origin_region=d.origin_region,
        outcome=d.outcome,
        amount=d.amount,
        currency=d.currency,
        payee_id=d.payee_id,
    )


def _sent(t: Transfer) -> OutboundRecord:
    return OutboundRecord(
        transfer_id=t.id,
        payee_region=t.payee_region,
        status=t.status,
        amount=t.amount,
        currency=t.currency,
        payee_id=t.payee_id,
        created_at=t.created_at,
    )
