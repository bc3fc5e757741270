"""SQL for rules, roles and the policy version. No rules of the domain here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from auth_rbac.policy.enforcer import Rule
from auth_rbac.policy.tables import casbin_rule, rbac_policy_version, rbac_role
from auth_rbac.tenants.repository import disabled_tenants

_VALUE_COLUMNS = [casbin_rule.c[f"v{i}"] for i in range(6)]
#: Set on the session when a transaction bumped the policy version.
CHANGED_KEY = "auth_rbac.policy_changed"


@dataclass(frozen=True, slots=True)
class RoleRow:
    domain: str
    name: str
    description: str
    builtin: bool
    created_at: datetime


def _rule_filter(ptype: str, values: Sequence[str]) -> ColumnElement[bool]:
    return and_(
        casbin_rule.c.ptype == ptype,
        *(column == value for column, value in zip(_VALUE_COLUMNS, values, strict=False)),
    )


def _domain_of(rule: Rule) -> str | None:
    """The domain of a rule: v1 of a permission (sub, dom, obj, act), v2 of an assignment."""
    index = 2 if rule[0] == "p" else 3
    return rule[index] if len(rule) > index else None


class PolicyRepository:
    """Queries over ``casbin_rule``, ``rbac_role`` and ``rbac_policy_version``."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def version(self) -> int:
        value = await self.session.scalar(
            select(rbac_policy_version.c.version).where(rbac_policy_version.c.id == 1)
        )
        return int(value or 0)

    async def bump_version(self) -> int:
        """Increment the version; the first write of every change, so writers queue here."""
        await self.session.execute(
            update(rbac_policy_version)
            .where(rbac_policy_version.c.id == 1)
            .values(version=rbac_policy_version.c.version + 1)
        )
        self.session.info[CHANGED_KEY] = True
        return await self.version()

    async def load_rules(self) -> list[Rule]:
        """Every rule, but those of disabled tenants' domains: nothing is allowed there."""
        disabled = await disabled_tenants(self.session)
        rows = await self.session.execute(
            select(casbin_rule.c.ptype, *_VALUE_COLUMNS).order_by(casbin_rule.c.id)
        )
        rules: list[Rule] = [
            (row[0], *(value for value in row[1:] if value is not None)) for row in rows.all()
        ]
        if not disabled:
            return rules
        return [rule for rule in rules if _domain_of(rule) not in disabled]

    async def has_rule(self, ptype: str, values: Sequence[str]) -> bool:
        found = await self.session.scalar(
            select(casbin_rule.c.id).where(_rule_filter(ptype, values)).limit(1)
        )
        return found is not None

    async def add_rule(self, ptype: str, values: Sequence[str]) -> None:
        row = {"ptype": ptype, **{f"v{i}": value for i, value in enumerate(values)}}
        await self.session.execute(insert(casbin_rule).values(**row))

    async def remove_rules(self, ptype: str, values: Sequence[str | None]) -> int:
        """Delete rules matching ``values`` position by position (None matches anything)."""
        conditions = [casbin_rule.c.ptype == ptype]
        for column, value in zip(_VALUE_COLUMNS, values, strict=False):
            if value is not None:
                conditions.append(column == value)
        result = await self.session.execute(delete(casbin_rule).where(and_(*conditions)))
        return int(getattr(result, "rowcount", 0) or 0)

    async def count_members(self, role: str, domain: str) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(casbin_rule)
            .where(casbin_rule.c.ptype == "g", casbin_rule.c.v1 == role, casbin_rule.c.v2 == domain)
        )
        return int(count or 0)

    async def get_role(self, domain: str, name: str) -> RoleRow | None:
        row = (
            await self.session.execute(
                select(rbac_role).where(rbac_role.c.domain == domain, rbac_role.c.name == name)
            )
        ).first()
        return None if row is None else _role(row)

    async def list_roles(self, domain: str) -> list[RoleRow]:
        rows = await self.session.execute(
            select(rbac_role).where(rbac_role.c.domain == domain).order_by(rbac_role.c.name)
        )
        return [_role(row) for row in rows.all()]

    async def add_role(self, domain: str, name: str, description: str) -> RoleRow:
        now = datetime.now(UTC)
        await self.session.execute(
            insert(rbac_role).values(
                domain=domain, name=name, description=description, builtin=False, created_at=now
            )
        )
        return RoleRow(domain, name, description, False, now)

    async def delete_role(self, domain: str, name: str) -> None:
        await self.session.execute(
            delete(rbac_role).where(rbac_role.c.domain == domain, rbac_role.c.name == name)
        )


def _role(row: object) -> RoleRow:
    mapping = row._mapping  # type: ignore[attr-defined]
    created = mapping["created_at"]
    if created.tzinfo is None:  # SQLite hands back naive datetimes
        created = created.replace(tzinfo=UTC)
    return RoleRow(
        domain=mapping["domain"],
        name=mapping["name"],
        description=mapping["description"],
        builtin=bool(mapping["builtin"]),
        created_at=created,
    )
