"""SQL for tenants and members. No rules of the domain here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_rbac.policy.tables import rbac_role
from auth_rbac.tenants.tables import rbac_tenant, rbac_tenant_member


@dataclass(frozen=True, slots=True)
class TenantRow:
    id: str
    name: str
    disabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MemberRow:
    tenant: str
    user: str
    created_at: datetime


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _tenant(row: object) -> TenantRow:
    m = row._mapping  # type: ignore[attr-defined]
    return TenantRow(
        m["id"], m["name"], bool(m["disabled"]), _aware(m["created_at"]), _aware(m["updated_at"])
    )


class TenantRepository:
    """Queries over ``rbac_tenant`` and ``rbac_tenant_member``."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant: str) -> TenantRow | None:
        row = (
            await self.session.execute(select(rbac_tenant).where(rbac_tenant.c.id == tenant))
        ).first()
        return None if row is None else _tenant(row)

    async def all(self) -> list[TenantRow]:
        rows = await self.session.execute(select(rbac_tenant).order_by(rbac_tenant.c.id))
        return [_tenant(row) for row in rows.all()]

    async def add(self, tenant: str, name: str, now: datetime) -> TenantRow:
        await self.session.execute(
            insert(rbac_tenant).values(
                id=tenant, name=name, disabled=False, created_at=now, updated_at=now
            )
        )
        return TenantRow(tenant, name, False, now, now)

    async def update(self, tenant: str, now: datetime, **values: object) -> None:
        await self.session.execute(
            update(rbac_tenant).where(rbac_tenant.c.id == tenant).values(updated_at=now, **values)
        )

    async def add_builtin_role(
        self, tenant: str, name: str, description: str, now: datetime
    ) -> None:
        await self.session.execute(
            insert(rbac_role).values(
                domain=tenant, name=name, description=description, builtin=True, created_at=now
            )
        )

    async def member(self, tenant: str, user: str) -> MemberRow | None:
        row = (
            await self.session.execute(
                select(rbac_tenant_member).where(
                    rbac_tenant_member.c.tenant == tenant, rbac_tenant_member.c.user_id == user
                )
            )
        ).first()
        if row is None:
            return None
        m = row._mapping
        return MemberRow(m["tenant"], m["user_id"], _aware(m["created_at"]))

    async def members(self, tenant: str) -> list[MemberRow]:
        rows = await self.session.execute(
            select(rbac_tenant_member)
            .where(rbac_tenant_member.c.tenant == tenant)
            .order_by(rbac_tenant_member.c.created_at, rbac_tenant_member.c.user_id)
        )
        return [
            MemberRow(r._mapping["tenant"], r._mapping["user_id"], _aware(r._mapping["created_at"]))
            for r in rows.all()
        ]

    async def add_member(self, tenant: str, user: str, now: datetime) -> MemberRow:
        await self.session.execute(
            insert(rbac_tenant_member).values(tenant=tenant, user_id=user, created_at=now)
        )
        return MemberRow(tenant, user, now)

    async def remove_member(self, tenant: str, user: str) -> None:
        await self.session.execute(
            delete(rbac_tenant_member).where(
                rbac_tenant_member.c.tenant == tenant, rbac_tenant_member.c.user_id == user
            )
        )


async def disabled_tenants(session: AsyncSession) -> set[str]:
    """The domains whose rules the policy leaves out: their tenants are disabled."""
    rows = await session.execute(select(rbac_tenant.c.id).where(rbac_tenant.c.disabled.is_(True)))
    return {str(row[0]) for row in rows.all()}
