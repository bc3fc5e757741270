"""HTTP API of the audit (the gateway requires wallet:audit) and its internal twin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from sv_money.audit.schemas import AuditReport
from sv_money.audit.service import AuditService
from sv_money.deps import Auditor, PeerRegion, provided

router = APIRouter(prefix="/api/v1/wallet/audit", tags=["audit"])
internal_router = APIRouter(prefix="/internal/audit", tags=["audit (internal)"])

AuditServiceDep = Annotated[AuditService, Depends(provided(AuditService))]


@router.get("", response_model=AuditReport)
async def audit(
    admin: Auditor,
    auditor: AuditServiceDep,
    region: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
) -> AuditReport:
    """Check the ledger of ``region`` (the caller's own region's sv-money by default)."""
    return await auditor.run_for(region)


@internal_router.get("", response_model=AuditReport)
async def audit_here(caller: PeerRegion, auditor: AuditServiceDep) -> AuditReport:
    """Check this region's ledger."""
    return await auditor.run()
