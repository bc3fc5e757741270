"""HTTP API of the wallet."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from edgelib.deps import CurrentUser
from sv_money.deps import provided
from sv_money.wallet.schemas import AccountRead
from sv_money.wallet.service import WalletService

router = APIRouter(prefix="/api/v1/wallet", tags=["wallet"])

WalletServiceDep = Annotated[WalletService, Depends(provided(WalletService))]


@router.get("", response_model=list[AccountRead])
async def read_wallet(caller: CurrentUser, wallet: WalletServiceDep) -> list[AccountRead]:
    """The caller's accounts: balance, held and available funds per currency."""
    return await wallet.accounts(caller)
