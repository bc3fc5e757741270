"""sv-money app: ``create_app()`` and its lifespan."""

from pathlib import Path

from fastapi import FastAPI

from edgelib.app import create_service_app
from edgelib.settings import ServiceSettings
from sv_money.config import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        title="sv-money",
        description="Wallets on a double-entry ledger.",
        migrations=MIGRATIONS,
        api_prefix="/api/v1/wallet",
    )
    return app
