"""A service made with the platform's app factory and runner, with one slow endpoint.

``python -m tests.libs.discovery.slow_service`` serves it as every service is served
(``edgelib.runner.run_service``); ``SLOW_*`` and ``EDGE_*`` variables configure it.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from edgelib.app import create_service_app
from edgelib.runner import run_service
from edgelib.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SLOW_", env_file=None, extra="ignore")
    service_name: ClassVar[str] = "sv-slow"


def create_app(settings: ServiceSettings) -> FastAPI:
    app = create_service_app(settings, title="slow", version="9.9.9")

    @app.get("/slow")
    async def slow(seconds: float = 1.0) -> dict[str, float]:
        await asyncio.sleep(min(seconds, 10.0))
        return {"slept": seconds}

    return app


if __name__ == "__main__":
    run_service(Settings, create_app)
