"""Quotas API: public under ``/api/v1/quotas`` (tenants:admin), and the gateways' feed.

``PUT`` sets one quota (the body names it: ``kind``, ``target``, an app's ``tenant``),
``GET`` lists them, ``DELETE`` (by query) removes one. After a committed change the new
version goes out on ``edge:rbac:quotas``; gateways also poll ``/internal/quotas``.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from auth_rbac.policy.schemas import NAME_PATTERN
from auth_rbac.quotas.repository import QUOTAS_CHANGED_KEY, QuotaRepository, QuotaRow
from auth_rbac.quotas.schemas import Kind, Quota, QuotaDocument, QuotaIn, QuotaList
from auth_rbac.quotas.service import QuotaService
from auth_rbac.tenants.endpoints import TenantAdmin
from edgelib.backends import Backend, BackendError
from edgelib.deps import InternalCaller
from edgelib.uow import SessionDep, after_commit

logger = logging.getLogger("auth_rbac.quotas")

router = APIRouter(prefix="/api/v1/quotas", tags=["quotas"])
internal_router = APIRouter(prefix="/internal/quotas", tags=["internal"])

#: Gateways load every quota.
Gateway = Annotated[str, InternalCaller(allowed={"gateway-api"})]
#: Pub/sub channel carrying the new quota version (ASCII digits) after each change.
QUOTA_CHANNEL = "edge:rbac:quotas"


async def _change_session(request: Request, session: SessionDep) -> AsyncSession:
    """The request's session; once a quota change commits, its version is announced."""
    backend: Backend = request.app.state.backend

    async def announce() -> None:
        if not session.info.pop(QUOTAS_CHANGED_KEY, False):
            return
        async with request.app.state.database.sessions() as fresh:
            version = await QuotaRepository(fresh).version()
        try:
            await backend.publish(QUOTA_CHANNEL, str(version).encode())
        except BackendError as exc:  # the gateways' poll still carries it
            logger.warning("quota notification failed", extra={"error": str(exc)})

    after_commit(session, announce)
    return session


QuotaChangeSession = Annotated[AsyncSession, Depends(_change_session)]


def _out(row: QuotaRow) -> Quota:
    return Quota(
        kind=row.kind,
        tenant=row.tenant,
        target=row.target,
        qps=row.qps,
        qpd=row.qpd,
        concurrency=row.concurrency,
        burst=row.burst,
        timezone=row.timezone,
        on_redis_down=row.on_redis_down,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


@router.get("", response_model=QuotaList)
async def list_quotas(
    session: SessionDep,
    admin: TenantAdmin,
    kind: Kind | None = None,
    tenant: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=128)] = None,
) -> QuotaList:
    """Quotas: every one (platform admins), or the caller's tenant's."""
    service = QuotaService(session, caller=admin)
    rows = await service.visible(kind, tenant)
    return QuotaList(version=await service.version(), quotas=[_out(row) for row in rows])


@router.put("", response_model=Quota)
async def put_quota(
    body: QuotaIn, response: Response, session: QuotaChangeSession, admin: TenantAdmin
) -> Quota:
    """Set one quota (201 when new); every gateway enforces it within a second."""
    row, created = await QuotaService(session, caller=admin).put(body)
    if created:
        response.status_code = status.HTTP_201_CREATED
    return _out(row)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
async def delete_quota(
    session: QuotaChangeSession,
    admin: TenantAdmin,
    kind: Kind,
    target: Annotated[str, Query(min_length=1, max_length=256)],
    tenant: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=128)] = None,
) -> None:
    """Remove one quota."""
    await QuotaService(session, caller=admin).remove(kind, target, tenant)


@internal_router.get("", response_model=QuotaDocument)
async def quota_document(
    caller: Gateway, session: SessionDep, since: int | None = Query(None, ge=0)
) -> QuotaDocument:
    """Every quota with its version; only the version when it still equals ``since``.

    An app's quota without a timezone takes its tenant's quota's (else UTC).
    """
    repo = QuotaRepository(session)
    version = await repo.version()
    if since is not None and since == version:
        return QuotaDocument(version=version, changed=False)
    rows = await repo.all()
    zones = {r.target: r.timezone for r in rows if r.kind == "tenant" and r.timezone}
    quotas = [_out(row) for row in rows]
    for quota in quotas:
        if quota.kind == "app" and quota.timezone is None:
            quota.timezone = zones.get(quota.tenant)
    return QuotaDocument(version=version, changed=True, quotas=quotas)
