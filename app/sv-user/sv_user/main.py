"""sv-user app: ``create_app()`` and its lifespan."""

from pathlib import Path

from fastapi import FastAPI

from edgelib.app import create_service_app
from edgelib.settings import ServiceSettings
from sv_user.config import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        title="sv-user",
        description="Accounts, profiles and credentials of one region's users.",
        migrations=MIGRATIONS,
        api_prefix="/api/v1/users",
    )
    return app
