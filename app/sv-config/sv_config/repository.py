"""SQL of sv-config: namespaces, draft items, releases, gray releases and the audit log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sv_config.models import AuditEntry, GrayRelease, Item, Namespace, Release

DEFAULT_CLUSTER = "default"
#: Audit actions that change what clients receive (the watch fallback looks for these).
RELEASE_ACTIONS = (
    "release.published",
    "release.rolled_back",
    "gray.started",
    "gray.targets_changed",
    "gray.promoted",
    "gray.aborted",
)


class ConfigRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: object) -> None:
        self.session.add(row)
        await self.session.flush()

    # --- namespaces ---------------------------------------------------------

    async def namespace(
        self, environment: str, cluster: str, name: str, *, for_update: bool = False
    ) -> Namespace | None:
        query = select(Namespace).where(
            Namespace.environment == environment,
            Namespace.cluster == cluster,
            Namespace.name == name,
        )
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def resolve(self, environment: str, cluster: str, name: str) -> Namespace | None:
        """The cluster's own namespace, else the environment's ``default`` cluster one."""
        found = await self.namespace(environment, cluster, name)
        if found is None and cluster != DEFAULT_CLUSTER:
            found = await self.namespace(environment, DEFAULT_CLUSTER, name)
        return found

    async def namespaces(
        self, *, environment: str | None, cluster: str | None, app: str | None
    ) -> Sequence[Namespace]:
        query = select(Namespace).order_by(Namespace.environment, Namespace.cluster, Namespace.name)
        if environment is not None:
            query = query.where(Namespace.environment == environment)
        if cluster is not None:
            query = query.where(Namespace.cluster == cluster)
        if app is not None:
            query = query.where(Namespace.app == app)
        return (await self.session.execute(query)).scalars().all()

    # --- draft items ----------------------------------------------------------

    async def items(self, namespace_id: int) -> Sequence[Item]:
        query = select(Item).where(Item.namespace_id == namespace_id).order_by(Item.key)
        return (await self.session.execute(query)).scalars().all()

    async def item(self, namespace_id: int, key: str) -> Item | None:
        return await self.session.get(Item, (namespace_id, key))

    async def count_items(self, namespace_id: int) -> int:
        query = select(func.count()).select_from(Item).where(Item.namespace_id == namespace_id)
        return int((await self.session.execute(query)).scalar_one())

    async def remove_item(self, item: Item) -> None:
        await self.session.delete(item)
        await self.session.flush()

    async def clear_items(self, namespace_id: int) -> None:
        await self.session.execute(delete(Item).where(Item.namespace_id == namespace_id))

    # --- releases -------------------------------------------------------------

    async def release(self, namespace_id: int, number: int) -> Release | None:
        query = select(Release).where(
            Release.namespace_id == namespace_id, Release.number == number
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def release_by_id(self, release_id: int) -> Release | None:
        return await self.session.get(Release, release_id)

    async def releases(
        self, namespace_id: int, *, limit: int, before: int | None
    ) -> Sequence[Release]:
        query = (
            select(Release)
            .where(Release.namespace_id == namespace_id)
            .order_by(Release.number.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(Release.number < before)
        return (await self.session.execute(query)).scalars().all()

    async def last_number(self, namespace_id: int) -> int:
        query = select(func.max(Release.number)).where(Release.namespace_id == namespace_id)
        return int((await self.session.execute(query)).scalar_one() or 0)

    # --- gray -----------------------------------------------------------------

    async def gray(self, namespace_id: int) -> GrayRelease | None:
        return await self.session.get(GrayRelease, namespace_id)

    async def end_gray(self, gray: GrayRelease) -> None:
        await self.session.delete(gray)
        await self.session.flush()

    # --- audit ----------------------------------------------------------------

    async def audit_page(
        self,
        *,
        environment: str | None,
        cluster: str | None,
        namespace: str | None,
        action: str | None,
        limit: int,
        before: int | None,
    ) -> Sequence[AuditEntry]:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        filters: dict[str, Any] = {
            "environment": environment,
            "cluster": cluster,
            "namespace": namespace,
            "action": action,
        }
        for column, value in filters.items():
            if value is not None:
                query = query.where(getattr(AuditEntry, column) == value)
        if before is not None:
            query = query.where(AuditEntry.id < before)
        return (await self.session.execute(query)).scalars().all()

    async def release_changes_after(self, last_id: int) -> Sequence[tuple[int, str, str]]:
        """Audit ids, environments and namespaces of release changes newer than ``last_id``."""
        query = (
            select(AuditEntry.id, AuditEntry.environment, AuditEntry.namespace)
            .where(AuditEntry.id > last_id, AuditEntry.action.in_(RELEASE_ACTIONS))
            .order_by(AuditEntry.id)
            .limit(1000)
        )
        return [(r[0], r[1], r[2]) for r in (await self.session.execute(query)).all()]

    async def last_audit_id(self) -> int:
        return int((await self.session.execute(select(func.max(AuditEntry.id)))).scalar_one() or 0)
