"""Bodies of the internal API between regions' sv-money that only this domain uses (the
credit request and the records the audit reads are the posting core's, in
:mod:`sv_money.posting.schemas`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sv_money.posting.records import Outcome
from sv_money.posting.schemas import CreditRequest


class AbortRequest(BaseModel):
    """The payer's region gives up offering the transfer: decide it for good."""

    model_config = ConfigDict(extra="forbid")

    origin_region: str = Field(max_length=32)


class CreditOutcome(BaseModel):
    """The payee region's decision on a transfer; it never changes once made."""

    transfer_id: str
    outcome: Outcome
    reason: str | None = None


#: Most credits one batch may carry (a request body of about 400 kB).
MAX_CREDITS = 500


class CreditItem(CreditRequest):
    """One transfer's credit in a batch: the credit request, and the transfer's id."""

    transfer_id: str = Field(min_length=1, max_length=36)
    #: The W3C ``traceparent`` of the request that made the transfer: the payee's
    #: region does its part of that transfer in that trace (one call carries many).
    traceparent: str | None = Field(default=None, max_length=64)


class CreditBatch(BaseModel):
    """Credits for many transfers from one region, decided together; each decision is
    the one a single credit request of that transfer would get (idempotent per id)."""

    model_config = ConfigDict(extra="forbid")

    items: list[CreditItem] = Field(min_length=1, max_length=MAX_CREDITS)

    @model_validator(mode="after")
    def _one_per_transfer(self) -> CreditBatch:
        ids = [item.transfer_id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("each transfer appears at most once in a batch")
        return self


class CreditResult(BaseModel):
    """The decision on one transfer of a batch, or why there is none yet."""

    transfer_id: str
    #: None: not decided now (``problem`` says why); ask again later.
    outcome: Outcome | None
    reason: str | None = None
    #: The problem type a single credit request would have answered (for example
    #: ``transfer-mismatch``), when there is no decision.
    problem: str | None = None


class CreditResults(BaseModel):
    """One result per item of a :class:`CreditBatch`, in its order."""

    items: list[CreditResult]
