"""Categories and their templates: validated on save, resolved by locale on send."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sv_notice.exceptions import CategoryNotFound, NoTemplate, TemplateNotFound
from sv_notice.models import utcnow
from sv_notice.templates import rendering
from sv_notice.templates.renderer import TemplateRenderer
from sv_notice.templates.repository import TemplateRepository
from sv_notice.templates.schemas import (
    CategoryIn,
    CategoryOut,
    Rendered,
    TemplateIn,
    TemplateOut,
)


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    critical: bool
    channels: tuple[str, ...]


def locale_chain(wanted: str | None, fallback: str) -> list[str]:
    """``de-AT`` -> ``de-AT``, ``de``, then the fallback locale."""
    chain: list[str] = []
    for locale in (wanted, wanted.split("-")[0] if wanted else None, fallback):
        if locale and locale not in chain:
            chain.append(locale)
    return chain


class TemplateService:
    def __init__(
        self, repository: TemplateRepository, renderer: TemplateRenderer, *, default_locale: str
    ) -> None:
        self.repository = repository
        self.renderer = renderer
        self.default_locale = default_locale

    async def categories(self) -> list[CategoryOut]:
        return [CategoryOut.model_validate(dict(r)) for r in await self.repository.categories()]

    async def category(self, name: str) -> Category | None:
        row = await self.repository.category(name)
        if row is None:
            return None
        return Category(row["name"], bool(row["critical"]), tuple(row["channels"]))

    async def put_category(self, name: str, data: CategoryIn) -> CategoryOut:
        """Create or replace a category."""
        await self.repository.put_category(name, data.model_dump(), utcnow())
        row = await self.repository.category(name)
        assert row is not None
        return CategoryOut.model_validate(dict(row))

    async def templates(self, category: str | None = None) -> list[TemplateOut]:
        return [
            TemplateOut.model_validate(dict(r)) for r in await self.repository.templates(category)
        ]

    async def template(self, category: str, locale: str) -> TemplateOut:
        row = await self.repository.template(category, locale)
        if row is None:
            raise TemplateNotFound(f"no template for {category!r} in locale {locale!r}")
        return TemplateOut.model_validate(dict(row))

    async def put_template(self, category: str, locale: str, data: TemplateIn) -> TemplateOut:
        """Create or replace a template after checking its syntax and declared variables."""
        if await self.repository.category(category) is None:
            raise CategoryNotFound(f"no category {category!r}; create it first")
        declared = {name: spec.model_dump() for name, spec in data.variables.items()}
        rendering.check_source({"title": data.title, "body": data.body}, declared)
        await self.repository.put_template(category, locale, data.model_dump(), utcnow())
        return await self.template(category, locale)

    async def delete_template(self, category: str, locale: str) -> None:
        if not await self.repository.delete_template(category, locale):
            raise TemplateNotFound(f"no template for {category!r} in locale {locale!r}")

    async def render(
        self, category: str, locale: str | None, values: Mapping[str, Any]
    ) -> Rendered:
        """Resolve the template by locale, check ``values`` against it, and render it."""
        row = await self.repository.first_template(
            category, locale_chain(locale, self.default_locale)
        )
        if row is None:
            raise NoTemplate(f"category {category!r} has no template for locale {locale!r}")
        declared: dict[str, Any] = dict(row["variables"])
        rendering.check_values(declared, values)
        out = await self.renderer.render(
            {"title": row["title"], "body": row["body"]}, rendering.context_of(declared, values)
        )
        return Rendered(
            category=category, locale=row["locale"], title=out["title"][:255], body=out["body"]
        )
