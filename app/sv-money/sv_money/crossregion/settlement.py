"""The payer region's side of many cross-region decisions, settled in one transaction.

What :meth:`CrossRegionService._settle` does for one transfer, for a batch: each
``credited`` transfer's hold is captured into the clearing account of the payee's
region, each ``refused`` one's is voided, and the outbox rows are closed. The rows are
locked as the single path locks them (a transfer's outbox row, the transfer and its hold
together, in transfer-id order, then the accounts in one statement in id order), so
batches and single settlements never deadlock; a transfer someone else settled
meanwhile is left as it is. On PostgreSQL the writes are one statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.crossregion.records import CREDITED
from sv_money.crossregion.schemas import CreditOutcome
from sv_money.ledger.models import AccountKey, NewEntry, clearing
from sv_money.ledger.service import net_changes
from sv_money.posting.records import CAPTURED, COMPLETED, FAILED, VOIDED, Hold, Transfer
from sv_money.posting.repository import OUTBOX_PENDING, settle_postgres
from sv_money.posting.service import Posting, payment_keys, payment_legs
from sv_money.tables import utcnow

REFUSED_BY_PAYEE = "refused by the payee's region"


async def settle_many(
    conn: AsyncConnection, decided: Mapping[str, CreditOutcome]
) -> dict[str, Transfer]:
    """Capture or void the holds of the ``decided`` transfers (by id) and close their
    outbox rows; each one found, as it stands afterwards."""
    posting = Posting(conn)
    locked = await posting.outbox.lock_settling(list(decided))
    todo = [(t, h) for state, t, h in locked if state == OUTBOX_PENDING]
    if not todo:
        return {t.id: t for _, t, _ in locked}
    keys: set[AccountKey] = set()
    for t, hold in todo:
        payer = AccountKey.user(hold.owner_id, t.currency)
        if decided[t.id].outcome == CREDITED:
            to = AccountKey.system(clearing(t.payee_region), t.currency)
            keys.update(payment_keys(payer, to, t.fee))
        else:
            keys.add(payer)
    opened = await posting.ledger.open(*keys)
    now = utcnow()
    planned: list[NewEntry] = []
    released: list[tuple[int, int, int]] = []
    settled: list[Transfer] = []
    closed: list[Hold] = []
    for t, hold in todo:
        payer_key = AccountKey.user(hold.owner_id, t.currency)
        outcome = decided[t.id]
        if outcome.outcome == CREDITED:
            to = AccountKey.system(clearing(t.payee_region), t.currency)
            legs = payment_legs(opened, payment_keys(payer_key, to, t.fee), t.amount, t.fee)
            planned.append(
                posting.ledger.plan(
                    "xregion-out",
                    legs,
                    transfer_id=t.id,
                    release={opened[payer_key]: hold.reserved},
                )
            )
            settled.append(replace(t, status=COMPLETED, updated_at=now))
            closed.append(replace(hold, status=CAPTURED, captured=t.amount + t.fee, updated_at=now))
        else:
            released.append(posting.ledger.plan_release(opened[payer_key], hold.reserved))
            reason = (outcome.reason or REFUSED_BY_PAYEE)[:200]
            settled.append(replace(t, status=FAILED, failure_reason=reason, updated_at=now))
            closed.append(replace(hold, status=VOIDED, updated_at=now))
    changes = net_changes(planned, *released)
    if conn.dialect.name == "postgresql":
        # One statement (one round trip) for all of the settlement's writes.
        entry_of = await settle_postgres(conn, changes, planned, settled, closed, now=now)
    else:
        await posting.ledger.repository.change(changes)
        ids = await posting.ledger.repository.add_entries(planned) if planned else []
        entry_of = {e.transfer_id or "": i for e, i in zip(planned, ids, strict=True)}
        settled = [replace(t, entry_id=entry_of.get(t.id)) for t in settled]
        await posting.transfers.settle_many(settled)
        await posting.holds.settle_many(closed)
        await posting.outbox.close_many([t.id for t in settled])
    now_settled = {t.id: replace(t, entry_id=entry_of.get(t.id)) for t in settled}
    return {t.id: now_settled.get(t.id, t) for _, t, _ in locked}
