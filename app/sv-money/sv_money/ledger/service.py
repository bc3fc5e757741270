"""The ledger's rules: balanced entries, no overdraft, holds that reserve funds.

Every method works inside the caller's transaction, on accounts it locked with
:meth:`Ledger.open`; balances change in the same transaction as the journal, so they
can never disagree with it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from sv_money.ledger.exceptions import BalanceLimit, InsufficientFunds, UnbalancedEntry
from sv_money.ledger.models import Account, AccountKey, NewEntry
from sv_money.ledger.repository import LedgerRepository

REVERSAL = "reversal"
#: No balance may pass this (BIGINT holds 2**63 - 1): a refusal, not a database error.
BALANCE_LIMIT = 2**62


class Ledger:
    def __init__(self, repository: LedgerRepository) -> None:
        self.repository = repository

    async def open(self, *keys: AccountKey) -> dict[AccountKey, Account]:
        """Lock the accounts (created if missing) in id order, so no two transactions deadlock."""
        return await self.repository.lock(set(keys))

    async def reserve(self, account: Account, amount: int) -> None:
        """Hold ``amount`` of the account's available funds."""
        if amount <= 0:
            raise ValueError("a hold reserves a positive amount")
        if not account.allow_negative and account.available < amount:
            raise InsufficientFunds(
                f"{account.key.currency} {amount} asked, {account.available} available"
            )
        await self.repository.change([(account.id, 0, amount)])
        account.held += amount

    async def release(self, account: Account, amount: int) -> None:
        """Give back ``amount`` of what a hold reserved."""
        if amount < 0 or amount > account.held:
            raise ValueError("cannot release more than is held")
        if amount:
            await self.repository.change([(account.id, 0, -amount)])
            account.held -= amount

    def plan_reserve(self, account: Account, amount: int) -> tuple[int, int, int]:
        """:meth:`reserve` in memory: check and apply it to the locked account; the
        ``(account id, 0, held delta)`` change to write with :func:`net_changes`' others."""
        if amount <= 0:
            raise ValueError("a hold reserves a positive amount")
        if not account.allow_negative and account.available < amount:
            raise InsufficientFunds(
                f"{account.key.currency} {amount} asked, {account.available} available"
            )
        account.held += amount
        return (account.id, 0, amount)

    def plan_release(self, account: Account, amount: int) -> tuple[int, int, int]:
        """:meth:`release` in memory; the change to write."""
        if amount < 0 or amount > account.held:
            raise ValueError("cannot release more than is held")
        account.held -= amount
        return (account.id, 0, -amount)

    def plan(
        self,
        kind: str,
        legs: Sequence[tuple[Account, int]],
        *,
        transfer_id: str | None = None,
        reverses: int | None = None,
        release: Mapping[Account, int] | None = None,
    ) -> NewEntry:
        """Check one entry and apply it to the locked accounts in memory; :meth:`write` it next.

        ``release`` gives back held funds in the same step, which is how a hold is
        captured: its reservation ends as the debit lands. Raises
        :class:`InsufficientFunds` (changing nothing) when a debit would overdraw.
        """
        legs = [(a, amount) for a, amount in legs if amount]
        if len(legs) < 2 or sum(amount for _, amount in legs) != 0:
            raise UnbalancedEntry(f"{kind}: postings must be two or more and sum to zero")
        currencies = {a.key.currency for a, _ in legs}
        if len(currencies) != 1:
            raise UnbalancedEntry(f"{kind}: one entry moves one currency")
        by_account: dict[int, Account] = {}
        delta: dict[int, int] = defaultdict(int)
        freed: dict[int, int] = defaultdict(int)
        for account, amount in legs:
            by_account[account.id] = account
            delta[account.id] += amount
        for account, amount in (release or {}).items():
            if amount < 0 or amount > account.held:
                raise ValueError("cannot release more than is held")
            by_account[account.id] = account
            freed[account.id] += amount
        for account_id, account in by_account.items():
            after = account.balance + delta[account_id] - (account.held - freed[account_id])
            if delta[account_id] < 0 and not account.allow_negative and after < 0:
                raise InsufficientFunds(
                    f"{account.key.currency} {-delta[account_id]} asked, "
                    f"{account.available + freed[account_id]} available"
                )
            if abs(account.balance + delta[account_id]) > BALANCE_LIMIT:
                raise BalanceLimit(f"an account holds at most {BALANCE_LIMIT} minor units")
        for account_id, account in by_account.items():
            account.balance += delta[account_id]
            account.held -= freed[account_id]
        return NewEntry(
            kind=kind,
            currency=currencies.pop(),
            legs=tuple((a.id, amount) for a, amount in legs),
            transfer_id=transfer_id,
            reverses=reverses,
            changes=tuple(
                (i, delta[i], -freed[i]) for i in sorted(by_account) if delta[i] or freed[i]
            ),
        )

    async def write(self, planned: Sequence[NewEntry]) -> list[int]:
        """Write planned entries and their balance changes; the entries' ids, in order."""
        if not planned:
            return []
        await self.repository.change(net_changes(planned))
        return await self.repository.add_entries(planned)

    async def post(
        self,
        kind: str,
        legs: Sequence[tuple[Account, int]],
        *,
        transfer_id: str | None = None,
        reverses: int | None = None,
        release: Mapping[Account, int] | None = None,
    ) -> int:
        """Append one balanced entry and apply it to the balances; returns the entry id."""
        planned = self.plan(kind, legs, transfer_id=transfer_id, reverses=reverses, release=release)
        (entry_id,) = await self.write([planned])
        return entry_id

    async def reverse(self, entry_id: int, *, transfer_id: str | None = None) -> int:
        """Append the entry that undoes ``entry_id`` (each entry is reversed at most once)."""
        _kind, _currency, legs = await self.repository.entry_legs(entry_id)
        opened = await self.open(*(key for key, _ in legs))
        return await self.post(
            REVERSAL,
            [(opened[key], -amount) for key, amount in legs],
            transfer_id=transfer_id,
            reverses=entry_id,
        )


def net_changes(
    planned: Sequence[NewEntry], *more: tuple[int, int, int]
) -> list[tuple[int, int, int]]:
    """What ``planned`` entries (and the ``more`` changes, such as a hold's reservation)
    change, netted per account, in account-id order: ``(account id, balance delta, held
    delta)``."""
    net: dict[int, list[int]] = {}
    changes = [c for entry in planned for c in entry.changes]
    for account_id, d_balance, d_held in (*changes, *more):
        total = net.setdefault(account_id, [0, 0])
        total[0] += d_balance
        total[1] += d_held
    return [(i, b, h) for i, (b, h) in sorted(net.items())]
