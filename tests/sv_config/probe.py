"""A tiny service that runs on config from sv-config, for tests across real processes.

``python -m tests.sv_config.probe`` with ``PROBE_*`` settings. It records when each
release was applied (wall clock, so another process can compare), and answers
``GET /api/v1/probe/hello`` so a gateway can route to it.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from pydantic_settings import SettingsConfigDict

from edgelib.app import add_readiness_detail, create_service_app
from edgelib.configclient import ConfigClient, ConfigSnapshot
from edgelib.runner import run_service
from edgelib.settings import ServiceSettings
from edgelib.signing import ServiceSigner


class ProbeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PROBE_", extra="ignore")

    service_name: ClassVar[str] = "probe"
    port: int = 28999
    config_url: str = ""
    config_namespaces: str = "flags"
    config_labels: str = "{}"
    config_retry_max: float = 1.0


def create_app(base: ServiceSettings | None = None) -> FastAPI:
    settings = base if isinstance(base, ProbeSettings) else ProbeSettings()
    applied: list[dict[str, Any]] = []
    client = ConfigClient(
        [u.strip() for u in settings.config_url.split(",") if u.strip()],
        signer=ServiceSigner(settings.service_name, settings.keyring()),
        namespaces=settings.config_namespaces.split(","),
        environment=settings.profile,
        instance_id=settings.instance_id,
        service=settings.service_name,
        region=settings.region,
        labels=json.loads(settings.config_labels),
        cache_dir=settings.var_dir / "config-cache" / settings.instance_id,
        retry_max=settings.config_retry_max,
    )

    def record(snapshot: ConfigSnapshot) -> None:
        applied.append(
            {
                "namespace": snapshot.namespace,
                "release": snapshot.release,
                "gray": snapshot.gray,
                "source": snapshot.source,
                "values": dict(snapshot.values),
                "at": time.time(),
            }
        )

    client.on_change(record)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await client.start()
        try:
            yield
        finally:
            await client.stop()

    app = create_service_app(settings, title="probe", lifespan=lifespan)
    add_readiness_detail(app, "config", client.readiness)

    @app.get("/probe/config")
    async def config() -> dict[str, Any]:
        return {
            "running": {
                ns: {**client.snapshot(ns).describe(), "values": dict(client.values(ns))}
                for ns in client.namespaces
            },
            "connected": client.connected,
            "applied": applied,
        }

    @app.get("/api/v1/probe/{rest:path}")
    async def hello(rest: str, request: Request) -> dict[str, str]:
        return {"probe": settings.instance_id, "path": request.url.path}

    return app


if __name__ == "__main__":
    run_service(ProbeSettings, create_app)
