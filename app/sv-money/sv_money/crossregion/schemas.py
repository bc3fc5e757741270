"""Bodies of the internal API between regions' sv-money (the credit request itself is
the posting core's :class:`~sv_money.posting.schemas.CreditRequest`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sv_money.crossregion.records import Outcome


class AbortRequest(BaseModel):
    """The payer's region gives up offering the transfer: decide it for good."""

    model_config = ConfigDict(extra="forbid")

    origin_region: str = Field(max_length=32)


class CreditOutcome(BaseModel):
    """The payee region's decision on a transfer; it never changes once made."""

    transfer_id: str
    outcome: Outcome
    reason: str | None = None


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
