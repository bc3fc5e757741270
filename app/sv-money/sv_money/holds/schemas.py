"""Request and response bodies of holds."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from sv_money.posting.records import Hold, HoldStatus
from sv_money.schemas import Amount, Currency, Memo, Username


class HoldCreate(BaseModel):
    """Reserve ``amount`` of the caller's money for ``to_username``, to capture later."""

    model_config = ConfigDict(extra="forbid")

    to_username: Username
    amount: Amount
    currency: Currency
    memo: Memo | None = None
    #: Seconds until the hold expires and its funds are released (service default if absent).
    expires_in: int | None = Field(default=None, strict=True, ge=1)


class HoldCapture(BaseModel):
    """Capture ``amount`` (all of the hold when absent); the rest is released."""

    model_config = ConfigDict(extra="forbid")

    amount: Amount | None = None


class HoldRead(BaseModel):
    id: str
    status: HoldStatus
    amount: int
    captured: int
    currency: str
    to_username: str
    to_region: str
    memo: str | None
    #: The transfer a capture made.
    transfer_id: str | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


def hold_read(hold: Hold) -> HoldRead:
    """The public view of a hold."""
    return HoldRead(
        id=hold.id,
        status=hold.status,
        amount=hold.amount,
        captured=hold.captured,
        currency=hold.currency,
        to_username=hold.payee_username,
        to_region=hold.payee_region,
        memo=hold.memo,
        transfer_id=hold.transfer_id,
        expires_at=hold.expires_at,
        created_at=hold.created_at,
        updated_at=hold.updated_at,
    )
