"""sv-config app: ``create_app()`` and its lifespan."""

from pathlib import Path

from fastapi import FastAPI

from edgelib.app import create_service_app
from edgelib.settings import ServiceSettings
from sv_config.config import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        title="sv-config",
        description="Configuration centre: namespaces, versioned releases, gray release, push.",
        migrations=MIGRATIONS,
        api_prefix="/api/v1/config",
    )
    return app
