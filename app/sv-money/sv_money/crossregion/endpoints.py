"""Internal API between regions' sv-money (signed callers only; never routed by the gateway)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from sv_money.crossregion.exceptions import InboundNotFound, OutboundNotFound
from sv_money.crossregion.schemas import (
    AbortRequest,
    CreditBatch,
    CreditOutcome,
    CreditResults,
)
from sv_money.crossregion.service import CrossRegionService
from sv_money.deps import PeerRegion, provided
from sv_money.posting.schemas import (
    CreditRequest,
    InboundPage,
    InboundRecord,
    OutboundPage,
    OutboundRecord,
)

router = APIRouter(prefix="/internal", tags=["cross-region (internal)"])

TransferId = Annotated[str, Path(min_length=1, max_length=36)]
Region = Annotated[str, Query(min_length=1, max_length=32)]
After = Annotated[str | None, Query(max_length=36)]
Limit = Annotated[int, Query(ge=1, le=1000)]
CrossRegionServiceDep = Annotated[CrossRegionService, Depends(provided(CrossRegionService))]


@router.put("/transfers/{transfer_id}", response_model=CreditOutcome)
async def credit(
    transfer_id: TransferId,
    body: CreditRequest,
    caller: PeerRegion,
    crossregion: CrossRegionServiceDep,
) -> CreditOutcome:
    """Credit the payee of a transfer from another region, once; the decision is final."""
    return await crossregion.receive(transfer_id, body)


@router.post("/credits", response_model=CreditResults)
async def credit_many(
    body: CreditBatch, caller: PeerRegion, crossregion: CrossRegionServiceDep
) -> CreditResults:
    """Credit the payees of many transfers from another region, each once; one result per
    item, in order (a transfer without a decision now names the problem)."""
    return await crossregion.receive_many(body)


@router.put("/transfers/{transfer_id}/abort", response_model=CreditOutcome)
async def abort(
    transfer_id: TransferId,
    body: AbortRequest,
    caller: PeerRegion,
    crossregion: CrossRegionServiceDep,
) -> CreditOutcome:
    """Decide a transfer now: refused for good unless it was credited already."""
    return await crossregion.abort(transfer_id, body)


@router.get("/inbound", response_model=InboundPage)
async def inbound_page(
    origin: Region,
    caller: PeerRegion,
    crossregion: CrossRegionServiceDep,
    after: After = None,
    limit: Limit = 1000,
) -> InboundPage:
    """This region's decisions on transfers from ``origin``, by transfer id."""
    return await crossregion.inbound_page(origin, after=after, limit=limit)


@router.get("/inbound/{transfer_id}", response_model=InboundRecord)
async def inbound_record(
    transfer_id: TransferId, caller: PeerRegion, crossregion: CrossRegionServiceDep
) -> InboundRecord:
    """This region's decision on one transfer from another region."""
    record = await crossregion.inbound_record(transfer_id)
    if record is None:
        raise InboundNotFound(f"no decision on transfer {transfer_id}")
    return record


@router.get("/outbound", response_model=OutboundPage)
async def outbound_page(
    to: Region,
    caller: PeerRegion,
    crossregion: CrossRegionServiceDep,
    after: After = None,
    limit: Limit = 1000,
) -> OutboundPage:
    """Transfers this region made to users of region ``to``, by transfer id."""
    return await crossregion.outbound_page(to, after=after, limit=limit)


@router.get("/outbound/{transfer_id}", response_model=OutboundRecord)
async def outbound_record(
    transfer_id: TransferId, caller: PeerRegion, crossregion: CrossRegionServiceDep
) -> OutboundRecord:
    """One transfer this region made to another region's user."""
    record = await crossregion.outbound_record(transfer_id)
    if record is None:
        raise OutboundNotFound(f"no transfer {transfer_id} to another region")
    return record
