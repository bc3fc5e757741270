"""Bodies every money domain shares: the public view of a transfer, the credit one
region asks of another, and each region's records of the transfers between them (what
the cross-region API serves and the audit compares)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sv_money.currencies import CURRENCY_PATTERN
from sv_money.posting.records import Outcome, Transfer, TransferKind, TransferStatus
from sv_money.schemas import Amount


class TransferRead(BaseModel):
    """A movement of money. ``pending`` only while it crosses regions."""

    id: str
    kind: TransferKind
    status: TransferStatus
    amount: int
    fee: int
    currency: str
    memo: str | None
    from_username: str | None
    from_region: str | None
    to_username: str
    to_region: str
    hold_id: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime


def transfer_read(t: Transfer) -> TransferRead:
    """The public view of a transfer."""
    return TransferRead(
        id=t.id,
        kind=t.kind,
        status=t.status,
        amount=t.amount,
        fee=t.fee,
        currency=t.currency,
        memo=t.memo,
        from_username=t.payer_username,
        from_region=t.payer_region,
        to_username=t.payee_username,
        to_region=t.payee_region,
        hold_id=t.hold_id,
        failure_reason=t.failure_reason,
        created_at=t.created_at,
        updated_at=t.updated_at,
    )


class CreditRequest(BaseModel):
    """Credit ``payee_id`` with a transfer its payer's region has reserved.

    A well-formed request this region cannot honour (a payee who does not live here, a
    currency it does not keep) is refused for good rather than bounced, so the payer's
    region gets an answer it can act on.
    """

    model_config = ConfigDict(extra="forbid")

    origin_region: str = Field(max_length=32)
    kind: Literal["transfer", "capture"] = "transfer"
    payer_id: str = Field(max_length=64)
    payer_username: str = Field(max_length=64)
    payee_id: str = Field(max_length=64)
    payee_username: str = Field(max_length=64)
    payee_region: str = Field(max_length=32)
    amount: Amount
    currency: str = Field(pattern=CURRENCY_PATTERN)
    memo: str | None = Field(default=None, max_length=140)
    hold_id: str | None = Field(default=None, max_length=36)


class InboundRecord(BaseModel):
    transfer_id: str
    origin_region: str
    outcome: Outcome
    amount: int
    currency: str
    payee_id: str


class OutboundRecord(BaseModel):
    """A transfer from this region to a user of another, as this region sees it."""

    transfer_id: str
    payee_region: str
    status: Literal["pending", "completed", "failed", "reversed"]
    amount: int
    currency: str
    payee_id: str
    created_at: datetime


class OutboundPage(BaseModel):
    items: list[OutboundRecord]
    next_after: str | None


class InboundPage(BaseModel):
    items: list[InboundRecord]
    #: Pass as ``after`` for the next page; null on the last page.
    next_after: str | None
