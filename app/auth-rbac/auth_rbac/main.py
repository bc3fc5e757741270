"""auth-rbac app: ``create_app()`` and its lifespan."""

from pathlib import Path

from fastapi import FastAPI

from auth_rbac.config import Settings
from edgelib.app import create_service_app
from edgelib.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        title="auth-rbac",
        description="Roles, permissions and assignments on Casbin (RBAC with domains).",
        migrations=MIGRATIONS,
        api_prefix="/api/v1/rbac",
    )
    return app
