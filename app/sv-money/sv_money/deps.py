"""Dependencies of sv-money's endpoints: the service each one uses, and the
Idempotency-Key header.

Each domain's endpoints depend on their own service only (``TransferServiceDep`` and so
on, declared next to them with :func:`provided`), never on a bag of every service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import Depends, FastAPI, Header, Request

from edgelib.deps import InternalCaller
from edgelib.identity import Identity
from edgelib.permissions import RequirePermission
from sv_money.idempotency.exceptions import IdempotencyKeyRequired

S = TypeVar("S")


def provide(app: FastAPI, *instances: object) -> None:
    """Make ``instances`` (built in the lifespan) what :func:`provided` answers, by type."""
    app.state.provided = {type(instance): instance for instance in instances}


def provided(kind: type[S]) -> Callable[[Request], Awaitable[S]]:
    """A dependency answering the app's one ``kind``, as registered by :func:`provide`."""

    async def dependency(request: Request) -> S:
        instance: S = request.app.state.provided[kind]
        return instance

    dependency.__name__ = f"provided_{kind.__name__}"
    return dependency


async def _idempotency_key(idempotency_key: Annotated[str | None, Header()] = None) -> str:
    if idempotency_key is None:
        raise IdempotencyKeyRequired(
            "send an Idempotency-Key header (a unique string per operation, reused on retries)"
        )
    if not 1 <= len(idempotency_key) <= 255 or not all(
        33 <= ord(c) <= 126 for c in idempotency_key
    ):
        raise IdempotencyKeyRequired(
            "the Idempotency-Key must be 1 to 255 visible ASCII characters"
        )
    return idempotency_key


IdempotencyKey = Annotated[str, Depends(_idempotency_key)]

#: Response header marking a replayed result (same key, same request).
REPLAYED_HEADER = "Idempotent-Replayed"


#: sv-money's internal endpoints are for other regions' sv-money only.
PeerRegion = Annotated[str, InternalCaller(allowed={"sv-money"})]
#: Admin endpoints check their permission here too, not only at the gateway.
TopupAdmin = Annotated[Identity, RequirePermission("wallet:topup")]
Auditor = Annotated[Identity, RequirePermission("wallet:audit")]
