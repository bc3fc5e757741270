"""SQL for quotas and their version. No rules of the domain here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_rbac.quotas.tables import rbac_quota, rbac_quota_version

#: Set on the session when a transaction bumped the quota version.
QUOTAS_CHANGED_KEY = "rbac_quotas_changed"


@dataclass(frozen=True, slots=True)
class QuotaRow:
    kind: str
    tenant: str
    target: str
    qps: int | None
    qpd: int | None
    concurrency: int | None
    burst: int
    timezone: str | None
    on_redis_down: str
    updated_at: datetime
    updated_by: str


def _row(row: object) -> QuotaRow:
    m = dict(row._mapping)  # type: ignore[attr-defined]
    updated = m["updated_at"]
    m["updated_at"] = updated if updated.tzinfo is not None else updated.replace(tzinfo=UTC)
    return QuotaRow(**m)


class QuotaRepository:
    """Queries over ``rbac_quota`` and ``rbac_quota_version``."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def version(self) -> int:
        value = await self.session.scalar(
            select(rbac_quota_version.c.version).where(rbac_quota_version.c.id == 1)
        )
        return int(value or 0)

    async def bump_version(self) -> int:
        """Increment the version; the first write of every change, so writers queue here."""
        await self.session.execute(
            update(rbac_quota_version)
            .where(rbac_quota_version.c.id == 1)
            .values(version=rbac_quota_version.c.version + 1)
        )
        self.session.info[QUOTAS_CHANGED_KEY] = True
        return await self.version()

    async def all(self, *, kind: str | None = None, tenant: str | None = None) -> list[QuotaRow]:
        query = select(rbac_quota).order_by(
            rbac_quota.c.kind, rbac_quota.c.tenant, rbac_quota.c.target
        )
        if kind is not None:
            query = query.where(rbac_quota.c.kind == kind)
        if tenant is not None:
            query = query.where(rbac_quota.c.tenant == tenant)
        return [_row(row) for row in (await self.session.execute(query)).all()]

    async def get(self, kind: str, tenant: str, target: str) -> QuotaRow | None:
        row = (
            await self.session.execute(
                select(rbac_quota).where(
                    rbac_quota.c.kind == kind,
                    rbac_quota.c.tenant == tenant,
                    rbac_quota.c.target == target,
                )
            )
        ).first()
        return None if row is None else _row(row)

    async def put(self, row: QuotaRow) -> bool:
        """Insert or replace; True when it was new."""
        values = {k: getattr(row, k) for k in QuotaRow.__slots__}
        result = await self.session.execute(
            update(rbac_quota)
            .where(
                rbac_quota.c.kind == row.kind,
                rbac_quota.c.tenant == row.tenant,
                rbac_quota.c.target == row.target,
            )
            .values(**values)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            return False
        await self.session.execute(insert(rbac_quota).values(**values))
        return True

    async def delete(self, kind: str, tenant: str, target: str) -> bool:
        result = await self.session.execute(
            delete(rbac_quota).where(
                rbac_quota.c.kind == kind,
                rbac_quota.c.tenant == tenant,
                rbac_quota.c.target == target,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
