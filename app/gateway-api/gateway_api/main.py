"""gateway-api: ``create_app()`` builds the admin app; ``create_public_app`` the proxy."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from edgelib.app import create_service_app
from gateway_api.admin import router as admin_router
from gateway_api.config import Settings
from gateway_api.gateway import Gateway
from gateway_api.proxy import Proxy


def create_app(settings: Settings | None = None, gateway: Gateway | None = None) -> FastAPI:
    """The admin app; its lifespan starts and stops the shared :class:`Gateway`."""
    settings = settings or Settings()
    gw = gateway or Gateway(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gw.start(app.state.backend)
        try:
            yield
        finally:
            await gw.stop()

    app = create_service_app(
        settings,
        title="gateway-api admin",
        description="Admin API of the Edge gateway: cluster state and operations.",
        lifespan=lifespan,
    )
    app.state.gateway = gw
    app.include_router(admin_router)
    return app


def create_public_app(gateway: Gateway) -> Proxy:
    """The public listener's request handler (for :class:`~gateway_api.server.HttpServer`)."""
    return Proxy(gateway)
