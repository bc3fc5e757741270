"""Dependencies of sv-money's endpoints: its services, and the Idempotency-Key header."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from sv_money.audit.service import AuditService
from sv_money.crossregion.service import CrossRegionService
from sv_money.holds.service import HoldService
from sv_money.idempotency.exceptions import IdempotencyKeyRequired
from sv_money.topups.service import TopupService
from sv_money.transactions import Transactions
from sv_money.transfers.service import TransferService
from sv_money.wallet.service import WalletService


@dataclass(frozen=True, slots=True)
class Services:
    """sv-money's services, built once in the lifespan (they hold no request state)."""

    transactions: Transactions
    wallet: WalletService
    transfers: TransferService
    holds: HoldService
    topups: TopupService
    crossregion: CrossRegionService
    audit: AuditService


async def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


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
