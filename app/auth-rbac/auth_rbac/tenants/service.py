"""The rules of tenants. Never commits: the request's session dependency does.

A tenant is a Casbin domain. Creating one creates its built-in ``admin`` role, which
administers that domain's roles and apps and its members, and nothing outside it.
Disabling a tenant leaves its rules out of the policy every instance and gateway
loads (``PolicyRepository.load_rules``), so nothing is allowed in it until enabled
again; auth-jwt also refuses to issue tokens in it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from auth_rbac.policy.enforcer import DEFAULT_DOMAIN
from auth_rbac.policy.repository import PolicyRepository
from auth_rbac.tenants.exceptions import MemberNotFound, TenantExists, TenantNotFound
from auth_rbac.tenants.repository import MemberRow, TenantRepository, TenantRow

logger = logging.getLogger("auth_rbac.audit")

TENANT_ADMIN_ROLE = "admin"
#: What a tenant's own admin role holds, in the tenant's domain only.
TENANT_ADMIN_PERMISSIONS = (
    ("rbac", "admin"),
    ("apps", "admin"),
    ("tenants", "admin"),
    ("stats", "read"),
)


class TenantService:
    """Tenants and their members, with the policy changes they carry."""

    def __init__(self, session: AsyncSession, *, actor: str) -> None:
        self.repo = TenantRepository(session)
        self.policy = PolicyRepository(session)
        self.actor = actor

    def _audit(self, action: str, **fields: object) -> None:
        logger.info("tenant %s", action, extra={"actor": self.actor, **fields})

    async def get(self, tenant: str) -> TenantRow:
        row = await self.repo.get(tenant)
        if row is None:
            raise TenantNotFound(tenant)
        return row

    async def all(self) -> list[TenantRow]:
        return await self.repo.all()

    async def create(self, tenant: str, name: str) -> TenantRow:
        """A new tenant with its built-in admin role."""
        if tenant == DEFAULT_DOMAIN:
            raise TenantExists(tenant)
        version = await self.policy.bump_version()
        if await self.repo.get(tenant) is not None:
            raise TenantExists(tenant)
        now = datetime.now(UTC)
        row = await self.repo.add(tenant, name, now)
        if await self.policy.get_role(tenant, TENANT_ADMIN_ROLE) is None:
            await self.repo.add_builtin_role(
                tenant, TENANT_ADMIN_ROLE, "administers this tenant", now
            )
        for obj, act in TENANT_ADMIN_PERMISSIONS:
            values = (TENANT_ADMIN_ROLE, tenant, obj, act)
            if not await self.policy.has_rule("p", values):
                await self.policy.add_rule("p", values)
        self._audit("create", tenant=tenant, version=version)
        return row

    async def update(self, tenant: str, *, name: str | None, disabled: bool | None) -> TenantRow:
        """Rename, disable or enable; a change of ``disabled`` changes the policy."""
        version = await self.policy.bump_version()
        current = await self.get(tenant)
        values: dict[str, object] = {}
        if name is not None:
            values["name"] = name
        if disabled is not None:
            values["disabled"] = disabled
        now = datetime.now(UTC)
        await self.repo.update(tenant, now, **values)
        self._audit("update", tenant=tenant, version=version, **values)
        return TenantRow(
            tenant,
            name if name is not None else current.name,
            disabled if disabled is not None else current.disabled,
            current.created_at,
            now,
        )

    async def members(self, tenant: str) -> list[MemberRow]:
        await self.get(tenant)
        return await self.repo.members(tenant)

    async def add_member(self, tenant: str, user: str) -> tuple[MemberRow, bool]:
        """Make ``user`` a member; returns (membership, whether new)."""
        await self.get(tenant)
        existing = await self.repo.member(tenant, user)
        if existing is not None:
            return existing, False
        row = await self.repo.add_member(tenant, user, datetime.now(UTC))
        self._audit("add member", tenant=tenant, user=user)
        return row, True

    async def remove_member(self, tenant: str, user: str) -> None:
        """End a membership, and with it every role the user held in the tenant."""
        version = await self.policy.bump_version()
        await self.get(tenant)
        if await self.repo.member(tenant, user) is None:
            raise MemberNotFound(tenant, user)
        await self.repo.remove_member(tenant, user)
        await self.policy.remove_rules("g", (user, None, tenant))
        self._audit("remove member", tenant=tenant, user=user, version=version)

    async def status(self, tenant: str, user: str | None) -> tuple[bool, bool, bool]:
        """(exists, disabled, member) of ``tenant`` for ``user``."""
        if tenant == DEFAULT_DOMAIN:
            return True, False, True
        row = await self.repo.get(tenant)
        if row is None:
            return False, False, False
        member = user is not None and await self.repo.member(tenant, user) is not None
        return True, row.disabled, member
