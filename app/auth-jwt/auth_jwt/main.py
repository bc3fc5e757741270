"""auth-jwt app: ``create_app()`` and its lifespan."""

from pathlib import Path

from fastapi import FastAPI

from auth_jwt.config import Settings
from edgelib.app import create_service_app
from edgelib.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        title="auth-jwt",
        description="Login, access and refresh tokens, sessions, JWKS and key rotation.",
        migrations=MIGRATIONS,
        api_prefix="/api/v1/auth",
    )
    return app
