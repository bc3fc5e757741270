"""A service's own registration, as the app factory and the runner use it.

``create_service_app`` enters :func:`registration` last in its lifespan (so the instance
registers once everything else is up, and deregisters first on the way out). The runner
serves with :class:`DeregisteringServer`: on SIGTERM or SIGINT it deregisters, waits
``discovery_drain_delay`` for watchers to stop sending here, and only then lets uvicorn
close the listener and drain the requests in flight.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import FrameType

import uvicorn
from fastapi import FastAPI

from edgelib.discovery.model import Member
from edgelib.discovery.registrar import Registrar
from edgelib.settings import ServiceSettings

logger = logging.getLogger("edgelib.discovery")


def advertised_url(settings: ServiceSettings) -> str:
    if settings.advertise_url:
        return settings.advertise_url.rstrip("/")
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://{host}:{settings.port}"


def own_member(settings: ServiceSettings, *, version: str) -> Member:
    return Member(
        service=settings.service_name,
        region=settings.region,
        instance=settings.instance_id,
        url=advertised_url(settings),
        weight=settings.discovery_weight,
        zone=settings.zone,
        version=version,
        started=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )


@asynccontextmanager
async def registration(settings: ServiceSettings, *, version: str) -> AsyncIterator[Registrar]:
    """Registered in etcd while inside; deregistered (lease revoked) on the way out."""
    registrar = Registrar(
        settings.etcd_url,
        own_member(settings, version=version),
        prefix=settings.discovery_prefix,
        ttl=settings.discovery_ttl,
    )
    await registrar.start()
    try:
        yield registrar
    finally:
        await registrar.stop()


class DeregisteringServer(uvicorn.Server):
    """uvicorn that deregisters (``app.state.registrar``) before it stops listening."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, *, drain_delay: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_delay = drain_delay
        self._loop: asyncio.AbstractEventLoop | None = None
        self._leaving = False
        self._leave_task: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        registrar: Registrar | None = getattr(self._app.state, "registrar", None)
        if self._leaving or self._loop is None or registrar is None or not registrar.registered:
            # Nothing to deregister, or a second signal: uvicorn's own handling.
            super().handle_exit(sig, frame)
            return
        loop = self._loop
        self._leaving = True  # a second signal goes straight to uvicorn

        def begin() -> None:
            self._leave_task = loop.create_task(self._leave(registrar, sig))

        loop.call_soon_threadsafe(begin)

    async def _leave(self, registrar: Registrar, sig: int) -> None:
        logger.info("discovery: leaving: deregister, wait %.1fs, then drain", self._drain_delay)
        try:
            await registrar.stop()
            await asyncio.sleep(self._drain_delay)
        finally:
            super().handle_exit(sig, None)
