"""Bodies of the internal API between regions' sv-money that only this domain uses (the
credit request and the records the audit reads are the posting core's, in
:mod:`sv_money.posting.schemas`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sv_money.posting.records import Outcome


class AbortRequest(BaseModel):
    """The payer's region gives up offering the transfer: decide it for good."""

    model_config = ConfigDict(extra="forbid")

    origin_region: str = Field(max_length=32)


class CreditOutcome(BaseModel):
    """The payee region's decision on a transfer; it never changes once made."""

    transfer_id: str
    outcome: Outcome
    reason: str | None = None
