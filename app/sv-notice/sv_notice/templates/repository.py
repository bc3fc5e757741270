"""SQL for categories and templates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sv_notice.models import categories, templates, upsert


class TemplateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    async def categories(self) -> Sequence[RowMapping]:
        result = await self.session.execute(select(categories).order_by(categories.c.name))
        return result.mappings().all()

    async def category(self, name: str) -> RowMapping | None:
        result = await self.session.execute(select(categories).where(categories.c.name == name))
        return result.mappings().first()

    async def put_category(self, name: str, values: dict[str, Any], now: datetime) -> None:
        row = {"name": name, **values, "updated_at": now}
        await self.session.execute(
            upsert(self._dialect, categories, row, ["name"], [k for k in row if k != "name"])
        )

    async def templates(self, category: str | None = None) -> Sequence[RowMapping]:
        query = select(templates).order_by(templates.c.category, templates.c.locale)
        if category is not None:
            query = query.where(templates.c.category == category)
        return (await self.session.execute(query)).mappings().all()

    async def template(self, category: str, locale: str) -> RowMapping | None:
        result = await self.session.execute(
            select(templates).where(templates.c.category == category, templates.c.locale == locale)
        )
        return result.mappings().first()

    async def first_template(self, category: str, locales: Sequence[str]) -> RowMapping | None:
        """The template of the first locale in ``locales`` that has one."""
        result = await self.session.execute(
            select(templates).where(
                templates.c.category == category, templates.c.locale.in_(list(locales))
            )
        )
        found = {row["locale"]: row for row in result.mappings().all()}
        return next((found[loc] for loc in locales if loc in found), None)

    async def put_template(
        self, category: str, locale: str, values: dict[str, Any], now: datetime
    ) -> int:
        """Create or replace; returns the template's new version."""
        current = await self.template(category, locale)
        if current is None:
            await self.session.execute(
                templates.insert().values(
                    category=category, locale=locale, version=1, updated_at=now, **values
                )
            )
            return 1
        version = int(current["version"]) + 1
        await self.session.execute(
            update(templates)
            .where(templates.c.category == category, templates.c.locale == locale)
            .values(version=version, updated_at=now, **values)
        )
        return version

    async def delete_template(self, category: str, locale: str) -> bool:
        result = await self.session.execute(
            delete(templates).where(templates.c.category == category, templates.c.locale == locale)
        )
        return bool(getattr(result, "rowcount", 0))
