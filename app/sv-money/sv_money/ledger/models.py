"""Accounts as the ledger works with them inside one transaction."""

from __future__ import annotations

from dataclasses import dataclass

USER = "user"
SYSTEM = "system"

#: The system account money enters by (a top-up debits it; it may go negative).
TOPUP_SOURCE = "topup"
#: Where fees are paid to.
FEES = "fees"


def clearing(region: str) -> str:
    """The system account that settles with ``region`` (cross-region transfers)."""
    return f"clearing:{region}"


@dataclass(frozen=True, slots=True)
class AccountKey:
    owner_kind: str
    owner: str
    currency: str

    @classmethod
    def user(cls, user_id: str, currency: str) -> AccountKey:
        return cls(USER, user_id, currency)

    @classmethod
    def system(cls, name: str, currency: str) -> AccountKey:
        return cls(SYSTEM, name, currency)

    @property
    def allow_negative(self) -> bool:
        """System accounts through which money enters or leaves this region may go negative."""
        return self.owner_kind == SYSTEM and self.owner != FEES


@dataclass(slots=True, eq=False)
class Account:
    id: int
    key: AccountKey
    balance: int
    held: int
    allow_negative: bool

    @property
    def available(self) -> int:
        return self.balance - self.held


@dataclass(frozen=True, slots=True)
class NewEntry:
    """A checked, balanced entry waiting to be written: postings as (account id, amount)."""

    kind: str
    currency: str
    legs: tuple[tuple[int, int], ...]
    transfer_id: str | None
    reverses: int | None
    #: (account id, balance change, held change) it makes.
    changes: tuple[tuple[int, int, int], ...]
