"""HTTP API of top-ups (the gateway requires wallet:topup) and their internal forwarding."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from sv_money.deps import REPLAYED_HEADER, IdempotencyKey, PeerRegion, TopupAdmin, provided
from sv_money.posting.schemas import TransferRead
from sv_money.topups.schemas import ForwardedTopup, TopupCreate, TopupResult
from sv_money.topups.service import TopupService

router = APIRouter(prefix="/api/v1/wallet/topups", tags=["top-ups"])
internal_router = APIRouter(prefix="/internal/topups", tags=["top-ups (internal)"])

TopupId = Annotated[str, Path(max_length=36)]
TopupServiceDep = Annotated[TopupService, Depends(provided(TopupService))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TransferRead)
async def create_topup(
    body: TopupCreate,
    key: IdempotencyKey,
    admin: TopupAdmin,
    topups: TopupServiceDep,
    response: Response,
) -> TransferRead:
    """Add money to a user's wallet, in the user's own region."""
    result = await topups.create(admin, body, key)
    if result.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return result.transfer


@router.post("/{topup_id}/reversal", response_model=TransferRead)
async def reverse_topup(
    topup_id: TopupId, admin: TopupAdmin, topups: TopupServiceDep
) -> TransferRead:
    """Undo a top-up with a reversing entry (the user must still have the money)."""
    return await topups.reverse(topup_id)


@internal_router.post("", status_code=status.HTTP_201_CREATED, response_model=TopupResult)
async def apply_forwarded_topup(
    body: ForwardedTopup, key: IdempotencyKey, caller: PeerRegion, topups: TopupServiceDep
) -> TopupResult:
    """A top-up another region resolved to a user of this region."""
    return await topups.apply_forwarded(body, key)


@internal_router.post("/{topup_id}/reversal", response_model=TransferRead)
async def reverse_local_topup(
    topup_id: TopupId, caller: PeerRegion, topups: TopupServiceDep
) -> TransferRead:
    """Reverse a top-up kept by this region."""
    return await topups.reverse_here(topup_id)
