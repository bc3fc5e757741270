"""The payee side's decision on a cross-region transfer, as a typed value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sv_money.posting.records import Outcome

CREDITED: Outcome = "credited"
REFUSED: Outcome = "refused"


@dataclass(frozen=True, slots=True)
class Decision:
    """This region's decision on a transfer from another (an ``inbound_transfers`` row)."""

    transfer_id: str
    origin_region: str
    outcome: Outcome
    #: The terms it was credited with (zero and empty for one refused unseen).
    amount: int
    currency: str
    payee_id: str
    reason: str | None
    #: The journal entry of the credit.
    entry_id: int | None
    created_at: datetime
