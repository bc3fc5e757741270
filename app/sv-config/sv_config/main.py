"""sv-config app: ``create_app()`` and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from edgelib.app import create_service_app
from edgelib.settings import ServiceSettings
from sv_config.audit.endpoints import router as audit_router
from sv_config.config import Settings
from sv_config.content import ContentLimits
from sv_config.namespaces.endpoints import router as namespaces_router
from sv_config.releases.endpoints import router as releases_router
from sv_config.watch.endpoints import router as watch_router
from sv_config.watch.hub import WatchHub
from sv_config.watch.service import WatchService

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(base: ServiceSettings | None = None) -> FastAPI:
    if base is not None and not isinstance(base, Settings):
        raise TypeError("sv-config needs its own Settings")
    settings = base or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = WatchHub(
            app.state.backend,
            app.state.database,
            fallback_interval=settings.watch_fallback_interval,
        )
        await hub.start()
        app.state.watch_hub = hub
        app.state.watch_service = WatchService(
            app.state.database, hub, max_wait=settings.watch_max_wait
        )
        try:
            yield
        finally:
            await hub.close()

    app = create_service_app(
        settings,
        title="sv-config",
        description=(
            "Configuration centre: namespaces per environment and cluster, drafts, "
            "immutable numbered releases, rollback, diff, gray release, and change push."
        ),
        migrations=MIGRATIONS,
        lifespan=lifespan,
        api_prefix="/api/v1/config",
    )
    app.state.content_limits = ContentLimits(
        max_items=settings.max_items,
        max_value_bytes=settings.max_value_bytes,
        max_schema_bytes=settings.max_schema_bytes,
        max_release_bytes=settings.max_release_bytes,
    )
    app.include_router(namespaces_router)
    app.include_router(releases_router)
    app.include_router(audit_router)
    app.include_router(watch_router)
    return app
