"""Bodies of the internal API between regions' sv-money."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sv_money.currencies import CURRENCY_PATTERN
from sv_money.schemas import Amount

Outcome = Literal["credited", "refused"]


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
