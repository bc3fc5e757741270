"""Stripe's rules for idempotency keys.

A key belongs to one caller. The first request with it claims it, in the same
transaction as its effect, so a key is never claimed by a request that did not happen.
A retry with the same key and the same request (operation and validated body) gets
the first request's resource back, marked as a replay; the same key with another
request is refused (422). A refused request (insufficient funds, say) claims nothing,
so it may be retried with the same key once the reason is gone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import timedelta

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from edgelib.uow import Transactions
from sv_money.idempotency.exceptions import IdempotencyKeyReused
from sv_money.idempotency.repository import IdempotencyRepository
from sv_money.tables import utcnow


def fingerprint(operation: str, body: Mapping[str, object]) -> str:
    """Digest of what was asked: the operation and its body, key order aside."""
    canonical = orjson.dumps([operation, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


async def claim(
    conn: AsyncConnection, *, scope: str, key: str, print_: str, resource_id: str
) -> str | None:
    """Claim ``key`` for ``resource_id``: None when claimed now, else the first request's id.

    A concurrent request with the same key waits on the key's row until the first one
    commits or rolls back, then sees its outcome.
    """
    repository = IdempotencyRepository(conn)
    if await repository.insert(scope=scope, key=key, print_=print_, resource_id=resource_id):
        return None
    recorded, earlier = await repository.get(scope=scope, key=key)
    if recorded != print_:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for a different request; use a new key"
        )
    return earlier


async def recall(conn: AsyncConnection, *, scope: str, key: str, print_: str) -> str | None:
    """The resource a key was claimed for (None if it is free); 422 for another request."""
    found = await IdempotencyRepository(conn).find(scope=scope, key=key)
    if found is None:
        return None
    recorded, earlier = found
    if recorded != print_:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for a different request; use a new key"
        )
    return earlier


async def forget_expired(tx: Transactions, *, ttl: float) -> int:
    """Forget keys older than ``ttl`` seconds; how many."""
    before = utcnow() - timedelta(seconds=ttl)
    return await tx.run(lambda conn: IdempotencyRepository(conn).purge(before))
