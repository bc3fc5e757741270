"""HTTP API of transfers and history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from edgelib.deps import CurrentUser
from sv_money.deps import REPLAYED_HEADER, IdempotencyKey, provided
from sv_money.posting.schemas import TransferRead
from sv_money.transfers.schemas import TransferCreate, TransferPage
from sv_money.transfers.service import TransferService

router = APIRouter(prefix="/api/v1/wallet/transfers", tags=["transfers"])

TransferServiceDep = Annotated[TransferService, Depends(provided(TransferService))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TransferRead)
async def create_transfer(
    body: TransferCreate,
    key: IdempotencyKey,
    caller: CurrentUser,
    transfers: TransferServiceDep,
    response: Response,
) -> TransferRead:
    """Pay another user; a retry with the same Idempotency-Key returns the same transfer."""
    transfer, replayed = await transfers.create(caller, body, key)
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return transfer


@router.get("", response_model=TransferPage)
async def list_transfers(
    caller: CurrentUser,
    transfers: TransferServiceDep,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> TransferPage:
    """The caller's movements, newest first; follow ``next_cursor`` for older ones."""
    return await transfers.history(caller, cursor=cursor, limit=limit)


@router.get("/{transfer_id}", response_model=TransferRead)
async def read_transfer(
    transfer_id: Annotated[str, Path(max_length=36)],
    caller: CurrentUser,
    transfers: TransferServiceDep,
) -> TransferRead:
    """One movement the caller paid or received."""
    return await transfers.get(caller, transfer_id)
