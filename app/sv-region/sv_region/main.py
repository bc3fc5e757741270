"""sv-region app: ``create_app()`` and its lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from edgelib.app import create_service_app
from edgelib.db import Database
from edgelib.settings import ServiceSettings, own_settings
from sv_region.config import Settings
from sv_region.directory.endpoints import router as directory_router
from sv_region.regions.endpoints import internal_router as region_sources_router
from sv_region.regions.endpoints import router as regions_router
from sv_region.seed import seed_regions

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(config: ServiceSettings | None = None) -> FastAPI:
    settings = own_settings(config, Settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database: Database = app.state.database
        mode = f"etcd:{settings.discovery_prefix}" if settings.discovery == "etcd" else "static"
        await seed_regions(database, settings.regions, mode)
        yield

    app = create_service_app(
        settings,
        title="sv-region",
        description="Directory of regions, clusters and which region each user lives in.",
        migrations=MIGRATIONS,
        lifespan=lifespan,
        api_prefix="/api/v1/regions",
    )
    app.include_router(directory_router)
    app.include_router(regions_router)
    app.include_router(region_sources_router)
    return app
