"""The payer region's side of many cross-region decisions, settled in one transaction.

What :meth:`CrossRegionService._settle` does for one transfer, for a batch: each
``credited`` transfer's hold is captured into the clearing account of the payee's
region, each ``refused`` one's is voided, and the outbox rows are closed. The rows are
locked as the single path locks them (outbox, transfers, holds, then the accounts in
one statement in id order), each kind in id order, so batches and single settlements
never deadlock; a transfer someone else settled meanwhile is left as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.crossregion.records import CREDITED
from sv_money.crossregion.schemas import CreditOutcome
from sv_money.ledger.models import AccountKey, NewEntry, clearing
from sv_money.ledger.service import net_changes
from sv_money.posting.records import CAPTURED, COMPLETED, FAILED, VOIDED, Transfer
from sv_money.posting.service import Posting, payment_keys, payment_legs
from sv_money.tables import utcnow

REFUSED_BY_PAYEE = "refused by the payee's region"


async def settle_many(
    conn: AsyncConnection, decided: Mapping[str, CreditOutcome]
) -> dict[str, Transfer]:
    """Capture or void the holds of the ``decided`` transfers (by id) and close their
    outbox rows; every one of them as it stands afterwards."""
    posting = Posting(conn)
    ids = sorted(decided)
    pending = set(await posting.outbox.lock_pending(ids))
    records = await posting.transfers.get_many(ids, lock=True)
    todo = [t for t in records if t.id in pending and t.hold_id is not None]
    if not todo:
        return {t.id: t for t in records}
    holds = {
        h.id: h
        for h in await posting.holds.get_many([t.hold_id for t in todo if t.hold_id], lock=True)
    }
    keys: set[AccountKey] = set()
    for t in todo:
        payer = AccountKey.user(holds[t.hold_id or ""].owner_id, t.currency)
        if decided[t.id].outcome == CREDITED:
            keys.update(
                payment_keys(payer, AccountKey.system(clearing(t.payee_region), t.currency), t.fee)
            )
        else:
            keys.add(payer)
    opened = await posting.ledger.open(*keys)
    now = utcnow()
    planned: list[NewEntry] = []
    released: list[tuple[int, int, int]] = []
    captured: list[Transfer] = []
    settled: dict[str, Transfer] = {}
    closed_holds = []
    for t in todo:
        hold = holds[t.hold_id or ""]
        payer_key = AccountKey.user(hold.owner_id, t.currency)
        outcome = decided[t.id]
        if outcome.outcome == CREDITED:
            to = AccountKey.system(clearing(t.payee_region), t.currency)
            legs_keys = payment_keys(payer_key, to, t.fee)
            planned.append(
                posting.ledger.plan(
                    "xregion-out",
                    payment_legs(opened, legs_keys, t.amount, t.fee),
                    transfer_id=t.id,
                    release={opened[payer_key]: hold.reserved},
                )
            )
            captured.append(t)
            closed_holds.append(
                replace(
                    hold,
                    status=CAPTURED,
                    captured=t.amount + t.fee,
                    transfer_id=t.id,
                    updated_at=now,
                )
            )
        else:
            released.append(posting.ledger.plan_release(opened[payer_key], hold.reserved))
            settled[t.id] = replace(
                t,
                status=FAILED,
                failure_reason=(outcome.reason or REFUSED_BY_PAYEE)[:200],
                updated_at=now,
            )
            closed_holds.append(replace(hold, status=VOIDED, updated_at=now))
    await posting.ledger.repository.change(net_changes(planned, *released))
    if planned:
        entry_ids = await posting.ledger.repository.add_entries(planned)
        for t, entry_id in zip(captured, entry_ids, strict=True):
            settled[t.id] = replace(t, status=COMPLETED, entry_id=entry_id, updated_at=now)
    await posting.transfers.settle_many(list(settled.values()))
    await posting.holds.settle_many(closed_holds)
    await posting.outbox.close_many([t.id for t in todo])
    return {t.id: settled.get(t.id, t) for t in records}
