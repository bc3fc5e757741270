"""SQL of the ledger: account rows (locked in id order) and the append-only journal."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import bindparam, insert, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.ledger.models import USER, Account, AccountKey, NewEntry
from sv_money.tables import accounts, entries, insert_ignoring_conflicts, postings, utcnow

_COLUMNS = (
    accounts.c.id,
    accounts.c.owner_kind,
    accounts.c.owner,
    accounts.c.currency,
    accounts.c.balance,
    accounts.c.held,
    accounts.c.allow_negative,
)

_UPDATE_ACCOUNT = (
    update(accounts)
    .where(accounts.c.id == bindparam("account_id"))
    .values(
        balance=accounts.c.balance + bindparam("d_balance"),
        held=accounts.c.held + bindparam("d_held"),
    )
)


# Built once: statements made per call would cost their construction and cache-key
# computation on every transfer.
_LOCK_ACCOUNTS = (
    select(*_COLUMNS)
    .where(
        tuple_(accounts.c.owner_kind, accounts.c.owner, accounts.c.currency).in_(
            bindparam("keys", expanding=True)
        )
    )
    .order_by(accounts.c.id)
    .with_for_update()
)
#: The same on PostgreSQL, with the keys as arrays: one statement text for any number of
#: keys, so it is prepared once per connection (``IN (...)`` grows with the keys, and
#: each new length is a new statement to prepare).
_LOCK_ACCOUNTS_PG = text(
    "SELECT a.id, a.owner_kind, a.owner, a.currency, a.balance, a.held, a.allow_negative "
    "FROM accounts AS a JOIN unnest(CAST(:kinds AS varchar[]), CAST(:owners AS varchar[]), "
    "CAST(:currencies AS varchar[])) AS k(owner_kind, owner, currency) "
    "ON a.owner_kind = k.owner_kind AND a.owner = k.owner AND a.currency = k.currency "
    "ORDER BY a.id FOR UPDATE OF a"
)
_ADD_ENTRIES = insert(entries).returning(entries.c.id, sort_by_parameter_order=True)
_ADD_POSTINGS = insert(postings)


def _account(row: Sequence[object]) -> Account:
    id_, kind, owner, currency, balance, held, allow_negative = row
    return Account(
        id=int(id_),  # type: ignore[call-overload]
        key=AccountKey(str(kind), str(owner), str(currency)),
        balance=int(balance),  # type: ignore[call-overload]
        held=int(held),  # type: ignore[call-overload]
        allow_negative=bool(allow_negative),
    )


class LedgerRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def _select_locked(self, keys: Collection[AccountKey]) -> dict[AccountKey, Account]:
        if self.conn.dialect.name == "postgresql":
            rows = await self.conn.execute(
                _LOCK_ACCOUNTS_PG,
                {
                    "kinds": [k.owner_kind for k in keys],
                    "owners": [k.owner for k in keys],
                    "currencies": [k.currency for k in keys],
                },
            )
        else:
            rows = await self.conn.execute(
                _LOCK_ACCOUNTS, {"keys": [(k.owner_kind, k.owner, k.currency) for k in keys]}
            )
        found = {a.key: a for a in map(_account, rows)}
        return found

    async def lock(self, keys: Collection[AccountKey]) -> dict[AccountKey, Account]:
        """The accounts of ``keys``, created if missing, row-locked in id order."""
        found = await self._select_locked(keys)
        missing = [k for k in keys if k not in found]
        if missing:
            now = utcnow()
            await self.conn.execute(
                insert_ignoring_conflicts(self.conn.dialect.name, accounts),
                [
                    {
                        "owner_kind": k.owner_kind,
                        "owner": k.owner,
                        "currency": k.currency,
                        "balance": 0,
                        "held": 0,
                        "allow_negative": k.allow_negative,
                        "created_at": now,
                    }
                    for k in missing
                ],
            )
            found = await self._select_locked(keys)
        return found

    async def change(self, changes: Sequence[tuple[int, int, int]]) -> None:
        """Add ``(account id, balance delta, held delta)`` to each account."""
        await self.conn.execute(
            _UPDATE_ACCOUNT,
            [{"account_id": a, "d_balance": b, "d_held": h} for a, b, h in changes],
        )

    async def add_entries(self, planned: Sequence[NewEntry]) -> list[int]:
        """Append entries and their postings; their ids, in order."""
        now = utcnow()
        rows = await self.conn.execute(
            _ADD_ENTRIES,
            [
                {
                    "kind": e.kind,
                    "currency": e.currency,
                    "transfer_id": e.transfer_id,
                    "reverses": e.reverses,
                    "created_at": now,
                }
                for e in planned
            ],
        )
        ids = [int(r[0]) for r in rows]
        await self.conn.execute(
            _ADD_POSTINGS,
            [
                {"entry_id": entry_id, "account_id": account_id, "amount": amount}
                for entry_id, e in zip(ids, planned, strict=True)
                for account_id, amount in e.legs
            ],
        )
        return ids

    async def entry_legs(self, entry_id: int) -> tuple[str, str, list[tuple[AccountKey, int]]]:
        """An entry's kind, currency and legs, by account key."""
        kind, currency = (
            await self.conn.execute(
                select(entries.c.kind, entries.c.currency).where(entries.c.id == entry_id)
            )
        ).one()
        rows = await self.conn.execute(
            select(accounts.c.owner_kind, accounts.c.owner, postings.c.amount)
            .join(accounts, accounts.c.id == postings.c.account_id)
            .where(postings.c.entry_id == entry_id)
            .order_by(postings.c.id)
        )
        legs = [(AccountKey(k, o, currency), int(a)) for k, o, a in rows]
        return kind, currency, legs

    async def is_reversed(self, entry_id: int) -> bool:
        row = await self.conn.execute(select(entries.c.id).where(entries.c.reverses == entry_id))
        return row.first() is not None

    async def user_accounts(self, user_id: str) -> list[Account]:
        rows = await self.conn.execute(
            select(*_COLUMNS)
            .where(accounts.c.owner_kind == USER, accounts.c.owner == user_id)
            .order_by(accounts.c.currency)
        )
        return [_account(r) for r in rows]
