"""sv-config app: ``create_app()`` and its lifespan."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType

from fastapi import FastAPI

from edgelib.app import create_service_app
from edgelib.settings import ServiceSettings, own_settings
from sv_config.audit.endpoints import router as audit_router
from sv_config.config import Settings
from sv_config.content import ContentLimits
from sv_config.namespaces.endpoints import router as namespaces_router
from sv_config.releases.endpoints import router as releases_router
from sv_config.watch.endpoints import router as watch_router
from sv_config.watch.hub import WatchHub
from sv_config.watch.service import WatchService

MIGRATIONS = Path(__file__).parent / "migrations"


def _drain_watches_on_sigterm(hub: WatchHub) -> Callable[[], None]:
    """Answer waiting long polls as soon as SIGTERM arrives.

    uvicorn lets in-flight requests finish (up to its graceful timeout) before the
    lifespan ends; without this, every connected client's long poll would hold a stop
    for that long. The server's own handler still runs. Returns the undo.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):  # not under uvicorn (tests in-process): nothing to chain
        return lambda: None
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(hub.drain)
        previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def create_app(base: ServiceSettings | None = None) -> FastAPI:
    settings = own_settings(base, Settings)

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
        restore = _drain_watches_on_sigterm(hub)
        try:
            yield
        finally:
            restore()
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
    app.state.watch_callers = settings.extra_watch_callers()
    app.include_router(namespaces_router)
    app.include_router(releases_router)
    app.include_router(audit_router)
    app.include_router(watch_router)
    return app
