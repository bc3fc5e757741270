"""The rules of quotas. Never commits: the request's session dependency does.

Platform administrators (active tenant ``default``) set any quota. A tenant's admin
sets its own apps' quotas and reads its tenant's; the tenant's own quota and the flow
limits of routes and services are the platform's to set. Every change bumps the quota
version in its transaction; once committed it is announced to the gateways.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from auth_rbac.quotas.exceptions import QuotaNotFound, QuotaPlatformOnly
from auth_rbac.quotas.repository import QuotaRepository, QuotaRow
from auth_rbac.quotas.schemas import QuotaIn
from auth_rbac.tenants.scope import is_platform
from edgelib.identity import DEFAULT_TENANT, Identity

logger = logging.getLogger("auth_rbac.audit")

#: Where route and service flow limits are kept: they belong to no tenant.
PLATFORM_TENANT = DEFAULT_TENANT


def owner_tenant(caller: Identity, kind: str, target: str, tenant: str | None) -> str:
    """The tenant a quota is kept under; refuses what the caller may not touch."""
    if kind == "tenant":
        owner = target
    elif kind == "app":
        owner = tenant or caller.tenant or DEFAULT_TENANT
    else:
        owner = PLATFORM_TENANT
    if not is_platform(caller) and (kind != "app" or owner != caller.tenant):
        raise QuotaPlatformOnly()
    return owner


class QuotaService:
    """Quotas: list, set, remove."""

    def __init__(self, session: AsyncSession, *, caller: Identity) -> None:
        self.repo = QuotaRepository(session)
        self.caller = caller

    async def version(self) -> int:
        return await self.repo.version()

    async def visible(self, kind: str | None, tenant: str | None) -> list[QuotaRow]:
        """The quotas the caller may see: all (platform), or its tenant's."""
        if not is_platform(self.caller):
            tenant = self.caller.tenant
        return await self.repo.all(kind=kind, tenant=tenant)

    async def put(self, body: QuotaIn) -> tuple[QuotaRow, bool]:
        """Create or replace one quota; True when it was new."""
        owner = owner_tenant(self.caller, body.kind, body.target, body.tenant)
        await self.repo.bump_version()
        row = QuotaRow(
            kind=body.kind,
            tenant=owner,
            target=body.target,
            qps=body.qps,
            qpd=body.qpd,
            concurrency=body.concurrency,
            burst=body.burst,
            timezone=body.timezone,
            on_redis_down=body.on_redis_down,
            updated_at=datetime.now(UTC),
            updated_by=self.caller.user_id,
        )
        created = await self.repo.put(row)
        logger.info(
            "quota set",
            extra={"actor": self.caller.user_id, "kind": body.kind, "tenant": owner,
                   "target": body.target, "qps": body.qps, "qpd": body.qpd,
                   "concurrency": body.concurrency},
        )  # fmt: skip
        return row, created

    async def remove(self, kind: str, target: str, tenant: str | None) -> None:
        owner = owner_tenant(self.caller, kind, target, tenant)
        await self.repo.bump_version()
        if not await self.repo.delete(kind, owner, target):
            raise QuotaNotFound(kind, owner, target)
        logger.info(
            "quota removed",
            extra={"actor": self.caller.user_id, "kind": kind, "tenant": owner, "target": target},
        )
