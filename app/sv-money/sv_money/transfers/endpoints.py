"""HTTP API of transfers and history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from edgelib.deps import CurrentUser
from sv_money.deps import REPLAYED_HEADER, IdempotencyKey, ServicesDep
from sv_money.transfers.schemas import TransferCreate, TransferPage, TransferRead

router = APIRouter(prefix="/api/v1/wallet/transfers", tags=["transfers"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TransferRead)
async def create_transfer(
    body: TransferCreate,
    key: IdempotencyKey,
    caller: CurrentUser,
    services: ServicesDep,
    response: Response,
) -> TransferRead:
    """Pay another user; a retry with the same Idempotency-Key returns the same transfer."""
    transfer, replayed = await services.transfers.create(caller, body, key)
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return transfer


@router.get("", response_model=TransferPage)
async def list_transfers(
    caller: CurrentUser,
    services: ServicesDep,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> TransferPage:
    """The caller's movements, newest first; follow ``next_cursor`` for older ones."""
    return await services.transfers.history(caller, cursor=cursor, limit=limit)


@router.get("/{transfer_id}", response_model=TransferRead)
async def read_transfer(
    transfer_id: Annotated[str, Path(max_length=36)],
    caller: CurrentUser,
    services: ServicesDep,
) -> TransferRead:
    """One movement the caller paid or received."""
    return await services.transfers.get(caller, transfer_id)
