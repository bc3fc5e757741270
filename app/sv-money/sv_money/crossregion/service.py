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

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import timedelta
from functools import partial

from sqlalchemy.ext.asyncio import AsyncConnection

from edgelib.peers import PeerProblem, PeerUnavailable
from edgelib.tracing import current_traceparent, start_span
from edgelib.uow import Transactions
from sv_money.batching import Batches
from sv_money.crossregion.exceptions import TransferMismatch
from sv_money.crossregion.records import CREDITED, REFUSED, Decision
from sv_money.crossregion.repository import InboundRepository
from sv_money.crossregion.schemas import (
    MAX_CREDITS,
    AbortRequest,
    CreditBatch,
    CreditItem,
    CreditOutcome,
    CreditResult,
    CreditResults,
)
from sv_money.crossregion.settlement import REFUSED_BY_PAYEE, settle_many
from sv_money.currencies import is_currency
from sv_money.ledger.exceptions import BalanceLimit
from sv_money.ledger.models import AccountKey, NewEntry, clearing
from sv_money.ledger.service import net_changes
from sv_money.notices import TransferNotices
from sv_money.peers import MoneyPeers
from sv_money.posting.records import COMPLETED, FAILED, VOIDED, Movement, Transfer
from sv_money.posting.repository import (
    OUTBOX_PENDING,
    OutboxRepository,
    TransferRepository,
    book_postgres,
)
from sv_money.posting.schemas import (
    CreditRequest,
    InboundPage,
    InboundRecord,
    OutboundPage,
    OutboundRecord,
)
from sv_money.posting.service import Posting, credit_request
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
        #: Transfers just sent, each with its request's ``traceparent`` (one call carries
        #: many, so the payee's region joins each transfer's trace from its item),
        #: delivered many per call to each peer region.
        self.batches: dict[str, Batches[tuple[Transfer, str], Transfer]] = {
            peer: Batches(
                partial(self._deliver_batch, peer),
                name=f"credits-to-{peer}",
                max_batch=MAX_CREDITS,
            )
            for peer in peers.regions
        }

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the batched deliveries to every peer region while the context is open."""
        async with contextlib.AsyncExitStack() as stack:
            for batches in self.batches.values():
                await stack.enter_async_context(batches.running())
            yield

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

    async def settle(self, transfer: Transfer) -> Transfer:
        """Deliver a transfer just sent, with whatever others wait for the same region
        (one call), and settle them in one transaction; the transfer as it stands then."""
        batches = self.batches.get(transfer.payee_region)
        if batches is None:
            await self.deliver(transfer.id)
            found = await self.tx.read(lambda c: TransferRepository(c).get(transfer.id))
            return found or transfer
        try:
            return await batches.submit((transfer, current_traceparent()))
        except Exception:
            # Sent (the outbox row is committed) but not delivered now: the recovery
            # worker delivers it after its grace; the caller sees it pending.
            logger.exception("cross-region delivery failed", extra={"transfer_id": transfer.id})
            return transfer

    async def _deliver_batch(
        self, peer: str, queued: Sequence[tuple[Transfer, str]]
    ) -> list[Transfer | Exception]:
        """One credit call to ``peer`` for all of ``sent``, then one settlement; a transfer
        without a decision stays pending (the recovery worker asks again after its grace)."""
        sent = [t for t, _ in queued]
        batch = CreditBatch(
            items=[
                CreditItem(
                    transfer_id=t.id,
                    traceparent=traceparent or None,
                    **credit_request(t, origin=self.region).model_dump(),
                )
                for t, traceparent in queued
            ]
        )
        try:
            response = await self.peers.call(
                peer, "POST", "/internal/credits", json=batch.model_dump(mode="json")
            )
            results = CreditResults.model_validate_json(response.content)
        except (PeerUnavailable, PeerProblem, ValueError) as exc:
            logger.warning(
                "cross-region transfers not settled yet",
                extra={"peer": peer, "transfers": len(sent), "error": str(exc)},
            )
            return list(sent)
        decided = {
            r.transfer_id: CreditOutcome(
                transfer_id=r.transfer_id, outcome=r.outcome, reason=r.reason
            )
            for r in results.items
            if r.outcome is not None
        }
        asked = {t.id for t in sent}
        decided = {k: v for k, v in decided.items() if k in asked}
        if not decided:
            return list(sent)
        try:
            now = await self.tx.run(lambda conn: settle_many(conn, decided))
        except Exception:
            # Decided there, not settled here: the recovery worker settles them later.
            logger.exception("cross-region settlement failed", extra={"peer": peer})
            return list(sent)
        return [now.get(t.id, t) for t in sent]

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
                failure_reason=(outcome.reason or REFUSED_BY_PAYEE)[:200],
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

    async def receive_many(self, batch: CreditBatch) -> CreditResults:
        """:meth:`receive` for many transfers in one transaction (one journal write for all
        credits). Should that transaction fail, each transfer is tried alone, so one that
        cannot be written never holds back the others; nothing is half-written."""
        try:
            results = await self._receive_together(batch.items)
        except Exception:
            if len(batch.items) == 1:
                raise
            logger.warning("credit batch failed; deciding its transfers one by one")
            results = []
            for item in batch.items:
                try:
                    results += await self._receive_together([item])
                except Exception as exc:
                    logger.warning(
                        "credit failed",
                        extra={"transfer_id": item.transfer_id, "error": type(exc).__name__},
                    )
                    results.append(
                        CreditResult(
                            transfer_id=item.transfer_id, outcome=None, problem="unavailable"
                        )
                    )
        return CreditResults(items=results)

    async def _receive_together(self, items: Sequence[CreditItem]) -> list[CreditResult]:
        credited_now: list[CreditItem] = []

        async def work(conn: AsyncConnection) -> list[CreditResult]:
            credited_now.clear()
            inbound = InboundRepository(conn)
            refusals = {i.transfer_id: self._refusal(i) for i in items}
            claimed = await inbound.claim_many(
                [
                    {
                        "transfer_id": i.transfer_id,
                        "origin_region": i.origin_region,
                        "outcome": CREDITED if refusals[i.transfer_id] is None else REFUSED,
                        "amount": i.amount,
                        "currency": i.currency,
                        "payee_id": i.payee_id,
                        "reason": refusals[i.transfer_id],
                    }
                    for i in items
                ]
            )
            earlier = await inbound.get_many(
                [i.transfer_id for i in items if i.transfer_id not in claimed]
            )
            results: dict[str, CreditResult] = {}
            to_credit: list[CreditItem] = []
            for item in items:
                tid = item.transfer_id
                if tid not in claimed:
                    before = earlier[tid]
                    if before.outcome == CREDITED and (
                        before.amount != item.amount
                        or before.currency != item.currency
                        or before.payee_id != item.payee_id
                    ):
                        results[tid] = CreditResult(
                            transfer_id=tid, outcome=None, problem=TransferMismatch.type_slug
                        )
                    else:
                        results[tid] = CreditResult(
                            transfer_id=tid, outcome=before.outcome, reason=before.reason
                        )
                elif refusals[tid] is not None:
                    results[tid] = CreditResult(
                        transfer_id=tid, outcome=REFUSED, reason=refusals[tid]
                    )
                else:
                    to_credit.append(item)
            if to_credit:
                entry_of = await self._credit_many(conn, to_credit)
                for item in to_credit:
                    if entry_of[item.transfer_id] is None:
                        reason = "the payee's balance would pass its limit"
                        await inbound.refuse(item.transfer_id, reason)
                        results[item.transfer_id] = CreditResult(
                            transfer_id=item.transfer_id, outcome=REFUSED, reason=reason
                        )
                    else:
                        results[item.transfer_id] = CreditResult(
                            transfer_id=item.transfer_id, outcome=CREDITED
                        )
                        credited_now.append(item)
            return [results[i.transfer_id] for i in items]

        results = await self.tx.run(work)
        for item in credited_now:  # committed: tell each payee once, in the transfer's trace
            with (
                start_span("credit received", parent=item.traceparent)
                if item.traceparent
                else contextlib.nullcontext()
            ):
                # The batch's access line is the batch runner's; this line is the
                # transfer's, with its trace id.
                logger.info(
                    "cross-region transfer credited",
                    extra={"transfer_id": item.transfer_id, "origin_region": item.origin_region},
                )
                self.notices.received(
                    transfer_id=item.transfer_id,
                    payee_id=item.payee_id,
                    region=self.region,
                    amount=item.amount,
                    currency=item.currency,
                    from_username=item.payer_username,
                    memo=item.memo,
                )
        return results

    async def _credit_many(
        self, conn: AsyncConnection, items: Sequence[CreditItem]
    ) -> dict[str, int | None]:
        """Credit each payee from the clearing account of the transfer's region (one
        write for all); per item its entry id, or None where the credit was refused."""
        posting = Posting(conn)
        keys: set[AccountKey] = set()
        for i in items:
            keys.add(AccountKey.system(clearing(i.origin_region), i.currency))
            keys.add(AccountKey.user(i.payee_id, i.currency))
        opened = await posting.ledger.open(*keys)
        planned: list[NewEntry] = []
        booked: list[CreditItem] = []
        entry_of: dict[str, int | None] = {}
        for i in items:
            payer = opened[AccountKey.system(clearing(i.origin_region), i.currency)]
            payee = opened[AccountKey.user(i.payee_id, i.currency)]
            try:
                planned.append(
                    posting.ledger.plan(
                        "xregion-in",
                        [(payer, -i.amount), (payee, i.amount)],
                        transfer_id=i.transfer_id,
                    )
                )
            except BalanceLimit:
                entry_of[i.transfer_id] = None
                continue
            booked.append(i)
        if not planned:
            return entry_of
        now = utcnow()
        unnumbered = [
            Transfer.of(_received(i.transfer_id, i), status=COMPLETED, at=now) for i in booked
        ]
        if conn.dialect.name == "postgresql":
            ids = await book_postgres(conn, net_changes(planned), planned, unnumbered)
            entry_ids = [ids[i.transfer_id] for i in booked]
        else:
            entry_ids = await posting.ledger.write(planned)
            await posting.transfers.add_many(
                [replace(t, entry_id=e) for t, e in zip(unnumbered, entry_ids, strict=True)]
            )
        await InboundRepository(conn).set_entries(
            {i.transfer_id: e for i, e in zip(booked, entry_ids, strict=True)}
        )
        entry_of.update(zip([i.transfer_id for i in booked], entry_ids, strict=True))
        return entry_of

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
