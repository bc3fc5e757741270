"""Money records as typed values: movements, the transfers recorded for them, holds and
outbox items. Amounts are integers in the currency's minor units."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

TransferKind = Literal["transfer", "topup", "capture"]
TransferStatus = Literal["pending", "completed", "failed", "reversed"]

PENDING: TransferStatus = "pending"
COMPLETED: TransferStatus = "completed"
FAILED: TransferStatus = "failed"
REVERSED: TransferStatus = "reversed"

#: The payee region's decision on a cross-region transfer; it never changes once made.
Outcome = Literal["credited", "refused"]

HoldKind = Literal["hold", "transfer"]
HoldStatus = Literal["pending", "capturing", "captured", "voided", "expired"]

#: Hold statuses: reserved until captured or voided; ``capturing`` while its capture (or
#: the cross-region transfer it reserves for) waits for the payee's region.
HOLD_PENDING: HoldStatus = "pending"
CAPTURING: HoldStatus = "capturing"
CAPTURED: HoldStatus = "captured"
VOIDED: HoldStatus = "voided"
EXPIRED: HoldStatus = "expired"


@dataclass(frozen=True, slots=True)
class Movement:
    """What a new transfer moves: who pays whom how much, before it is booked."""

    id: str
    kind: TransferKind
    payer_id: str | None
    payer_username: str | None
    payer_region: str | None
    payee_id: str
    payee_username: str
    payee_region: str
    amount: int
    currency: str
    fee: int = 0
    memo: str | None = None
    #: The hold it is paid from (a capture, or a cross-region transfer's reservation).
    hold_id: str | None = None
    #: The administrator who made a top-up.
    initiated_by: str | None = None

    @property
    def total(self) -> int:
        """What the payer pays: the amount and the fee."""
        return self.amount + self.fee


@dataclass(frozen=True, slots=True)
class Transfer:
    """A movement as this region records it (a ``transfers`` row)."""

    id: str
    kind: TransferKind
    status: TransferStatus
    payer_id: str | None
    payer_username: str | None
    payer_region: str | None
    payee_id: str
    payee_username: str
    payee_region: str
    amount: int
    fee: int
    currency: str
    memo: str | None
    hold_id: str | None
    entry_id: int | None
    initiated_by: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    #: Its place in this region's history (None until read back from the table).
    seq: int | None

    @classmethod
    def of(
        cls,
        movement: Movement,
        *,
        status: TransferStatus,
        at: datetime,
        entry_id: int | None = None,
    ) -> Transfer:
        """The record of ``movement``, written at ``at``."""
        m = movement
        return cls(
            m.id,
            m.kind,
            status,
            m.payer_id,
            m.payer_username,
            m.payer_region,
            m.payee_id,
            m.payee_username,
            m.payee_region,
            m.amount,
            m.fee,
            m.currency,
            m.memo,
            m.hold_id,
            entry_id,
            m.initiated_by,
            None,
            at,
            at,
            None,
        )


@dataclass(frozen=True, slots=True)
class Hold:
    """Funds of ``owner_id`` reserved for a payee (a ``holds`` row, less its account id)."""

    id: str
    kind: HoldKind
    status: HoldStatus
    owner_id: str
    payee_id: str
    payee_username: str
    payee_region: str
    currency: str
    amount: int
    captured: int
    memo: str | None
    #: The transfer its capture made.
    transfer_id: str | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def reserved(self) -> int:
        """What it holds of the owner's account now (what the audit expects held)."""
        if self.status == HOLD_PENDING:
            return self.amount
        if self.status == CAPTURING:
            return self.captured
        return 0


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A credit this region owes a delivery to another region (an ``outbox`` row)."""

    transfer_id: str
    peer_region: str
    #: pending, done
    state: str
    #: The credit request, as JSON.
    payload: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    updated_at: datetime
