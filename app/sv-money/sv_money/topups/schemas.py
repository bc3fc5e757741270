"""Request and response bodies of top-ups."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from sv_money.posting.schemas import TransferRead
from sv_money.schemas import Amount, Currency, Username


class TopupCreate(BaseModel):
    """Add ``amount`` minor units of ``currency`` to ``username``'s wallet."""

    model_config = ConfigDict(extra="forbid")

    username: Username
    amount: Amount
    currency: Currency


class ForwardedTopup(BaseModel):
    """A top-up asked for in another region, for a user who lives in this one."""

    model_config = ConfigDict(extra="forbid")

    topup: TopupCreate
    user_id: str = Field(max_length=64)
    username: str = Field(max_length=64)
    region: str = Field(max_length=32)
    admin_id: str = Field(max_length=64)


class TopupResult(BaseModel):
    transfer: TransferRead
    replayed: bool
