"""HTTP API of the wallet."""

from __future__ import annotations

from fastapi import APIRouter

from edgelib.deps import CurrentUser
from sv_money.deps import ServicesDep
from sv_money.wallet.schemas import AccountRead

router = APIRouter(prefix="/api/v1/wallet", tags=["wallet"])


@router.get("", response_model=list[AccountRead])
async def read_wallet(caller: CurrentUser, services: ServicesDep) -> list[AccountRead]:
    """The caller's accounts: balance, held and available funds per currency."""
    return await services.wallet.accounts(caller)
