"""The rules of changing policy. Never commits: the request's session dependency does.

Every change starts by bumping the policy version. That is the first write of the
transaction, so concurrent writers queue on that row (PostgreSQL row lock, SQLite's
single writer) and the checks that follow see a stable policy.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from auth_rbac.policy.enforcer import DEFAULT_DOMAIN
from auth_rbac.policy.exceptions import (
    BuiltinRole,
    ProtectedRule,
    RoleExists,
    RoleNotFound,
    RuleNotFound,
)
from auth_rbac.policy.repository import PolicyRepository, RoleRow

logger = logging.getLogger("auth_rbac.audit")

ADMIN_ROLE = "admin"
USER_ROLE = "user"
#: The permission that guards policy administration itself.
ADMIN_PERMISSION = ("rbac", "admin")


class PolicyService:
    """Grants, revocations, assignments and roles, with their safety rules."""

    def __init__(self, session: AsyncSession, *, actor: str) -> None:
        self.repo = PolicyRepository(session)
        self.actor = actor

    def _audit(self, action: str, version: int, **fields: str) -> None:
        logger.info("policy %s", action, extra={"actor": self.actor, "version": version, **fields})

    async def grant(self, sub: str, dom: str, obj: str, act: str) -> tuple[int, bool]:
        """Add a permission; returns (version, whether it is new)."""
        version = await self.repo.bump_version()
        values = (sub, dom, obj, act)
        if await self.repo.has_rule("p", values):
            return version, False
        await self.repo.add_rule("p", values)
        self._audit("grant", version, sub=sub, dom=dom, obj=obj, act=act)
        return version, True

    async def revoke(self, sub: str, dom: str, obj: str, act: str) -> int:
        """Remove a permission; the admin role's hold on policy administration stays."""
        if (sub, dom, (obj, act)) == (ADMIN_ROLE, DEFAULT_DOMAIN, ADMIN_PERMISSION):
            raise ProtectedRule(
                "The built-in admin role keeps rbac:admin in the default domain; "
                "otherwise nobody could administer the policy."
            )
        version = await self.repo.bump_version()
        if not await self.repo.remove_rules("p", (sub, dom, obj, act)):
            raise RuleNotFound(f"{sub} holds no permission {obj}:{act} in domain {dom}.")
        self._audit("revoke", version, sub=sub, dom=dom, obj=obj, act=act)
        return version

    async def assign(self, user: str, role: str, dom: str) -> tuple[int, bool]:
        """Give ``user`` the existing ``role`` in ``dom``; returns (version, whether new)."""
        version = await self.repo.bump_version()
        if await self.repo.get_role(dom, role) is None:
            raise RoleNotFound(role, dom)
        values = (user, role, dom)
        if await self.repo.has_rule("g", values):
            return version, False
        await self.repo.add_rule("g", values)
        self._audit("assign", version, user=user, role=role, dom=dom)
        return version, True

    async def unassign(self, user: str, role: str, dom: str) -> int:
        """Take ``role`` from ``user``; the last admin of the default domain stays."""
        version = await self.repo.bump_version()
        if not await self.repo.has_rule("g", (user, role, dom)):
            raise RuleNotFound(f"{user} does not hold role {role} in domain {dom}.")
        if (role, dom) == (ADMIN_ROLE, DEFAULT_DOMAIN) and (
            await self.repo.count_members(role, dom) <= 1
        ):
            raise ProtectedRule(f"{user} is the last holder of the admin role.")
        await self.repo.remove_rules("g", (user, role, dom))
        self._audit("unassign", version, user=user, role=role, dom=dom)
        return version

    async def create_role(self, name: str, dom: str, description: str) -> RoleRow:
        await self.repo.bump_version()
        if await self.repo.get_role(dom, name) is not None:
            raise RoleExists(name, dom)
        role = await self.repo.add_role(dom, name, description)
        self._audit("create role", await self.repo.version(), role=name, dom=dom)
        return role

    async def delete_role(self, name: str, dom: str) -> int:
        """Delete a role with its permissions and assignments in ``dom``."""
        version = await self.repo.bump_version()
        role = await self.repo.get_role(dom, name)
        if role is None:
            raise RoleNotFound(name, dom)
        if role.builtin:
            raise BuiltinRole(name)
        await self.repo.remove_rules("p", (name, dom))
        await self.repo.remove_rules("g", (None, name, dom))
        await self.repo.remove_rules("g", (name, None, dom))
        await self.repo.delete_role(dom, name)
        self._audit("delete role", version, role=name, dom=dom)
        return version

    async def get_role(self, name: str, dom: str) -> RoleRow:
        role = await self.repo.get_role(dom, name)
        if role is None:
            raise RoleNotFound(name, dom)
        return role

    async def list_roles(self, dom: str) -> list[RoleRow]:
        return await self.repo.list_roles(dom)
