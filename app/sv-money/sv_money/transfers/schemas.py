"""Request and response bodies of transfers and history."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from sv_money.schemas import Amount, Currency, Memo, Username

TransferKind = Literal["transfer", "topup", "capture"]
TransferStatus = Literal["pending", "completed", "failed", "reversed"]


class TransferCreate(BaseModel):
    """Move ``amount`` minor units of ``currency`` from the caller to ``to_username``."""

    model_config = ConfigDict(extra="forbid")

    to_username: Username
    amount: Amount
    currency: Currency
    memo: Memo | None = None


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


class TransferPage(BaseModel):
    items: list[TransferRead]
    #: Pass as ``cursor`` for the next (older) page; null on the last page.
    next_cursor: str | None


def transfer_read(row: Any) -> TransferRead:
    """The public view of a ``transfers`` row."""
    return TransferRead(
        id=row.id,
        kind=row.kind,
        status=row.status,
        amount=row.amount,
        fee=row.fee,
        currency=row.currency,
        memo=row.memo,
        from_username=row.payer_username,
        from_region=row.payer_region,
        to_username=row.payee_username,
        to_region=row.payee_region,
        hold_id=row.hold_id,
        failure_reason=row.failure_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
