"""Categories and templates (administrators; the gateway requires ``notices:admin``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from sv_notice.deps import NoticeAdmin, TemplatesDep
from sv_notice.schemas import CategoryName, Locale
from sv_notice.templates.schemas import (
    CategoryIn,
    CategoryOut,
    PreviewIn,
    Rendered,
    TemplateIn,
    TemplateOut,
)

router = APIRouter(prefix="/api/v1/notices/admin", tags=["admin"])

CategoryPath = Annotated[CategoryName, Path()]
LocalePath = Annotated[Locale, Path()]


@router.get("/categories", response_model=list[CategoryOut])
async def categories(_admin: NoticeAdmin, service: TemplatesDep) -> list[CategoryOut]:
    """Every category, with its channels and whether it is critical."""
    return await service.categories()


@router.put("/categories/{category}", response_model=CategoryOut)
async def put_category(
    category: CategoryPath, body: CategoryIn, _admin: NoticeAdmin, service: TemplatesDep
) -> CategoryOut:
    """Create or replace a category."""
    return await service.put_category(category, body)


@router.get("/templates", response_model=list[TemplateOut])
async def templates(
    _admin: NoticeAdmin,
    service: TemplatesDep,
    category: Annotated[CategoryName | None, Query()] = None,
) -> list[TemplateOut]:
    """Every template, or those of one category."""
    return await service.templates(category)


@router.get("/templates/{category}/{locale}", response_model=TemplateOut)
async def template(
    category: CategoryPath, locale: LocalePath, _admin: NoticeAdmin, service: TemplatesDep
) -> TemplateOut:
    """One template."""
    return await service.template(category, locale)


@router.put("/templates/{category}/{locale}", response_model=TemplateOut)
async def put_template(
    category: CategoryPath,
    locale: LocalePath,
    body: TemplateIn,
    _admin: NoticeAdmin,
    service: TemplatesDep,
) -> TemplateOut:
    """Create or replace a template; it may use only the variables it declares."""
    return await service.put_template(category, locale, body)


@router.delete("/templates/{category}/{locale}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_template(
    category: CategoryPath, locale: LocalePath, _admin: NoticeAdmin, service: TemplatesDep
) -> Response:
    """Delete a template."""
    await service.delete_template(category, locale)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/templates/{category}/{locale}/preview", response_model=Rendered)
async def preview(
    category: CategoryPath,
    locale: LocalePath,
    body: PreviewIn,
    _admin: NoticeAdmin,
    service: TemplatesDep,
) -> Rendered:
    """Render a template with sample variables, checked as a send would check them."""
    return await service.render(category, locale, body.variables)
