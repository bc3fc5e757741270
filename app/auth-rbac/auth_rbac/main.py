"""auth-rbac app: ``create_app()`` and its lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from auth_rbac.config import Settings
from auth_rbac.policy.endpoints import router as policy_router
from auth_rbac.policy.internal import router as internal_router
from auth_rbac.policy.sync import PolicySync
from auth_rbac.quotas.endpoints import internal_router as quotas_internal_router
from auth_rbac.quotas.endpoints import router as quotas_router
from auth_rbac.tenants.endpoints import internal_router as tenants_internal_router
from auth_rbac.tenants.endpoints import router as tenants_router
from edgelib.app import create_service_app
from edgelib.settings import ServiceSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or Settings()
    poll_interval = getattr(settings, "poll_interval", 0.5)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sync = PolicySync(app.state.database, app.state.backend, poll_interval=poll_interval)
        await sync.start()
        app.state.policy_sync = sync
        try:
            yield
        finally:
            await sync.stop()

    app = create_service_app(
        settings,
        title="auth-rbac",
        description="Roles, permissions and assignments on Casbin (RBAC with domains).",
        migrations=MIGRATIONS,
        lifespan=lifespan,
        api_prefix="/api/v1/rbac",
    )
    app.include_router(policy_router)
    app.include_router(internal_router)
    app.include_router(tenants_router)
    app.include_router(tenants_internal_router)
    app.include_router(quotas_router)
    app.include_router(quotas_internal_router)
    return app
