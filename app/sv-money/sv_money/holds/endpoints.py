"""HTTP API of holds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Response, status

from edgelib.deps import CurrentUser
from sv_money.deps import REPLAYED_HEADER, IdempotencyKey, provided
from sv_money.holds.schemas import HoldCapture, HoldCreate, HoldRead
from sv_money.holds.service import HoldService

router = APIRouter(prefix="/api/v1/wallet/holds", tags=["holds"])

HoldId = Annotated[str, Path(max_length=36)]
HoldServiceDep = Annotated[HoldService, Depends(provided(HoldService))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=HoldRead)
async def create_hold(
    body: HoldCreate,
    key: IdempotencyKey,
    caller: CurrentUser,
    holds: HoldServiceDep,
    response: Response,
) -> HoldRead:
    """Reserve funds for a payee until captured, voided or expired."""
    hold, replayed = await holds.create(caller, body, key)
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return hold


@router.get("/{hold_id}", response_model=HoldRead)
async def read_hold(hold_id: HoldId, caller: CurrentUser, holds: HoldServiceDep) -> HoldRead:
    """One of the caller's holds."""
    return await holds.get(caller, hold_id)


@router.post("/{hold_id}/capture", response_model=HoldRead)
async def capture_hold(
    hold_id: HoldId,
    caller: CurrentUser,
    holds: HoldServiceDep,
    body: Annotated[HoldCapture | None, Body()] = None,
) -> HoldRead:
    """Pay the payee all of the hold, or ``amount`` of it and release the rest."""
    return await holds.capture(caller, hold_id, body or HoldCapture())


@router.post("/{hold_id}/void", response_model=HoldRead)
async def void_hold(hold_id: HoldId, caller: CurrentUser, holds: HoldServiceDep) -> HoldRead:
    """Release the hold's funds."""
    return await holds.void(caller, hold_id)
