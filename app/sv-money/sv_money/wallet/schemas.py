"""Response bodies of the wallet."""

from __future__ import annotations

from pydantic import BaseModel


class AccountRead(BaseModel):
    """One currency of the wallet, in minor units. ``held`` is reserved by open holds."""

    currency: str
    balance: int
    held: int
    available: int
