"""The admin listener (loopback only by default): its app, whose lifespan starts and
stops the shared :class:`~gateway_api.gateway.Gateway`, ``GET /cluster``, and the
gateway's traffic metrics (every worker's) on ``GET /metrics``, and the admin console
under ``/console`` (:mod:`gateway_api.console`, ``GATEWAY_CONSOLE_ENABLED``)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request

from edgelib.app import create_service_app
from gateway_api.admin.metrics import gateway_metrics
from gateway_api.config import Settings
from gateway_api.console.app import close_console, create_console_app
from gateway_api.gateway import Gateway
from gateway_api.workers import with_workers

router = APIRouter(tags=["admin"])


@router.get("/cluster")
async def cluster(request: Request) -> dict[str, object]:
    """Every upstream instance with its health, in-flight requests and counters."""
    gateway = request.app.state.gateway
    result: dict[str, object] = with_workers(gateway, gateway.cluster())
    # TCP stream routes (transport/streams.py): this process's listeners and counts.
    streams = getattr(request.app.state, "streams", [])
    if streams:
        result["streams"] = [proxy.snapshot() for proxy in streams]
    return result


def create_app(settings: Settings, gateway: Gateway | None = None) -> FastAPI:
    """The admin app; its lifespan starts and stops the shared :class:`Gateway`."""
    gw = gateway or Gateway(settings)
    console = create_console_app(settings, gw) if settings.console_enabled else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gw.start(app.state.backend)
        try:
            yield
        finally:
            if console is not None:
                await close_console(console)
            await gw.stop()

    app = create_service_app(
        settings,
        title="gateway-api admin",
        description="Admin API of the Edge gateway: cluster state and operations.",
        lifespan=lifespan,
    )
    app.state.gateway = gw
    app.state.metrics_sources.append(lambda: gateway_metrics(gw))
    app.include_router(router)
    if console is not None:
        app.state.console_app = console
        app.mount("/console", console)
    return app
