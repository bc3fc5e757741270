"""Request and response bodies of transfers and history."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from sv_money.posting.schemas import TransferRead
from sv_money.schemas import Amount, Currency, Memo, Username


class TransferCreate(BaseModel):
    """Move ``amount`` minor units of ``currency`` from the caller to ``to_username``."""

    model_config = ConfigDict(extra="forbid")

    to_username: Username
    amount: Amount
    currency: Currency
    memo: Memo | None = None


class TransferPage(BaseModel):
    items: list[TransferRead]
    #: Pass as ``cursor`` for the next (older) page; null on the last page.
    next_cursor: str | None
