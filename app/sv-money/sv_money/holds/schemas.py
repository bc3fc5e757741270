"""Request and response bodies of holds."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sv_money.schemas import Amount, Currency, Memo, Username

HoldStatus = Literal["pending", "capturing", "captured", "voided", "expired"]


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


def hold_read(row: Any) -> HoldRead:
    """The public view of a ``holds`` row."""
    return HoldRead(
        id=row.id,
        status=row.status,
        amount=row.amount,
        captured=row.captured,
        currency=row.currency,
        to_username=row.payee_username,
        to_region=row.payee_region,
        memo=row.memo,
        transfer_id=row.transfer_id,
        expires_at=row.expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
