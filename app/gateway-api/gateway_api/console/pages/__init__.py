"""The console's pages: one module per page, each with an ``APIRouter`` named ``router``.

:data:`PAGES` is the navigation, in order. A page whose module does not exist yet is
served by a placeholder, so a new page is added by creating
``gateway_api/console/pages/<slug>.py`` (and its templates) and nothing else.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from fastapi import APIRouter


@dataclass(frozen=True)
class PageInfo:
    """One entry of the navigation: the URL part after the console's prefix, a title,
    and the permission the page needs to be shown at all (``console:read``)."""

    slug: str
    title: str


PAGES: tuple[PageInfo, ...] = (
    PageInfo("overview", "Overview"),
    PageInfo("services", "Services"),
    PageInfo("routes", "Routes"),
    PageInfo("tenants", "Tenants and apps"),
    PageInfo("users", "Users"),
    PageInfo("rbac", "RBAC"),
    PageInfo("regions", "Regions"),
    PageInfo("config", "Config"),
    PageInfo("logs", "Logs"),
    PageInfo("notices", "Notices"),
    PageInfo("wallet", "Wallet"),
)


def page_routers() -> list[tuple[PageInfo, APIRouter | None]]:
    """Each page with its module's router, or None where the module is not written yet."""
    found: list[tuple[PageInfo, APIRouter | None]] = []
    for page in PAGES:
        name = f"{__name__}.{page.slug}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            found.append((page, None))
            continue
        found.append((page, module.router))
    return found
