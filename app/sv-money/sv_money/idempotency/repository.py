"""SQL of idempotency keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, delete, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from sv_money.tables import idempotency_keys, insert_ignoring_conflicts, utcnow

#: Claims as arrays on PostgreSQL: one statement text for any number of claims, so it is
#: prepared once per connection (a multi-row VALUES is a new statement per row count).
_CLAIM_MANY_PG = text(
    "INSERT INTO idempotency_keys (scope, key, fingerprint, resource_id, created_at) "
    "SELECT c.scope, c.key, c.fingerprint, c.resource_id, CAST(:now AS timestamptz) "
    "FROM unnest(CAST(:scopes AS varchar[]), CAST(:keys AS varchar[]), "
    "CAST(:prints AS varchar[]), CAST(:ids AS varchar[])) "
    "AS c(scope, key, fingerprint, resource_id) "
    "ON CONFLICT DO NOTHING RETURNING resource_id"
)


class IdempotencyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert(self, *, scope: str, key: str, print_: str, resource_id: str) -> bool:
        """Record the key; False when it exists (after any transaction holding it ended)."""
        inserted = await self.conn.execute(
            insert_ignoring_conflicts(
                self.conn.dialect.name, idempotency_keys, idempotency_keys.c.resource_id
            ),
            {
                "scope": scope,
                "key": key,
                "fingerprint": print_,
                "resource_id": resource_id,
                "created_at": utcnow(),
            },
        )
        return inserted.first() is not None

    async def insert_many(self, claims: Sequence[tuple[str, str, str, str]]) -> set[str]:
        """Record ``(scope, key, fingerprint, resource id)`` claims in one statement; the
        resource ids whose claim took (a key taken already, or twice here, does not)."""
        now = utcnow()
        if self.conn.dialect.name == "postgresql":
            rows = await self.conn.execute(
                _CLAIM_MANY_PG,
                {
                    "scopes": [c[0] for c in claims],
                    "keys": [c[1] for c in claims],
                    "prints": [c[2] for c in claims],
                    "ids": [c[3] for c in claims],
                    "now": now,
                },
            )
            return {str(r[0]) for r in rows}
        rows = await self.conn.execute(
            insert_ignoring_conflicts(
                self.conn.dialect.name, idempotency_keys, idempotency_keys.c.resource_id
            ),
            [
                {
                    "scope": scope,
                    "key": key,
                    "fingerprint": print_,
                    "resource_id": resource_id,
                    "created_at": now,
                }
                for scope, key, print_, resource_id in claims
            ],
        )
        return {str(r[0]) for r in rows}

    async def delete_many(self, keys: Sequence[tuple[str, str]]) -> None:
        """Give back ``(scope, key)`` claims whose work did not happen."""
        await self.conn.execute(
            delete(idempotency_keys).where(
                tuple_(idempotency_keys.c.scope, idempotency_keys.c.key).in_(
                    bindparam("keys", expanding=True)
                )
            ),
            {"keys": list(keys)},
        )

    async def find(self, *, scope: str, key: str) -> tuple[str, str] | None:
        """The fingerprint and resource id recorded for the key, if any."""
        row = (
            await self.conn.execute(
                select(idempotency_keys.c.fingerprint, idempotency_keys.c.resource_id).where(
                    idempotency_keys.c.scope == scope, idempotency_keys.c.key == key
                )
            )
        ).first()
        return None if row is None else (str(row.fingerprint), str(row.resource_id))

    async def purge(self, before: datetime) -> int:
        """Forget keys recorded before ``before``; how many."""
        result = await self.conn.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < before)
        )
        return int(result.rowcount)

    async def get(self, *, scope: str, key: str) -> tuple[str, str]:
        """The fingerprint and resource id recorded for the key."""
        row = (
            await self.conn.execute(
                select(idempotency_keys.c.fingerprint, idempotency_keys.c.resource_id).where(
                    idempotency_keys.c.scope == scope, idempotency_keys.c.key == key
                )
            )
        ).one()
        return str(row.fingerprint), str(row.resource_id)
