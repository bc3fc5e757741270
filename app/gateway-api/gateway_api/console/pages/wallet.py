"""Wallet: sv-money's audit of each region (balanced entries, balances, holds, the
cross-region transfers in both directions), all regions asked at once."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from gateway_api.console.deps import ViewerDep
from gateway_api.console.fetching import fetched
from gateway_api.console.rendering import render

router = APIRouter()


@router.get("/wallet", response_class=HTMLResponse, name="page-wallet")
async def wallet(request: Request, viewer: ViewerDep) -> Response:
    """Each region's audit: clean or not, what it checked, what it found, in flight."""
    regions = await fetched(viewer.api.get("/api/v1/regions"))
    names = [str(r["name"]) for r in regions.data or []]
    audits = await asyncio.gather(
        *(fetched(viewer.api.get("/api/v1/wallet/audit", region=name)) for name in names)
    )
    return render(
        request, "pages/wallet.html", regions=regions, audits=list(zip(names, audits, strict=True))
    )
