"""auth-rbac in-process: signed callers (as the gateway, as a service) and app factories."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from auth_rbac.config import Settings
from auth_rbac.main import create_app
from edgelib.identity import GATEWAY_SERVICE, Identity
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from tests.conftest import PG_URL
from tests.helpers import running

ADMIN = "u-root"  # the subject the tests make admin through the internal endpoint
GATEWAY = ServiceSigner(GATEWAY_SERVICE, DEV_SERVICE_SECRET)


class AsGateway(httpx.Auth):
    """Signs a request the way the gateway forwards a caller it has verified."""

    def __init__(self, user_id: str, tenant: str = "default") -> None:
        self.identity = Identity(user_id, user_id, "east", "sid-1", "web", tenant=tenant).encode()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        target = request.url.raw_path.decode("ascii")
        request.headers.update(
            GATEWAY.sign(
                request.method, target, None, destination="auth-rbac", identity=self.identity
            )
        )
        yield request


class AsService(httpx.Auth):
    """Signs a request, body included, as another service of the platform."""

    requires_request_body = True

    def __init__(self, service: str = "sv-user") -> None:
        self.signer = ServiceSigner(service, DEV_SERVICE_SECRET)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        target = request.url.raw_path.decode("ascii")
        request.headers.update(
            self.signer.sign(request.method, target, request.content, destination="auth-rbac")
        )
        yield request


def rbac_settings(
    var_dir: Path,
    *,
    database_url: str | None = None,
    schema: str | None = None,
    redis_url: str = "memory://",
    port: int = 7103,
) -> Settings:
    return Settings(
        var_dir=var_dir,
        database_url=database_url,
        database_schema=schema,
        redis_url=redis_url,
        port=port,
        log_json=False,
        log_level="WARNING",
    )


@asynccontextmanager
async def fresh_pg_schema() -> AsyncIterator[str]:
    """A PostgreSQL schema name for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        engine = create_async_engine(PG_URL)
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        await engine.dispose()


async def make_admin(client: httpx.AsyncClient, user: str = ADMIN) -> None:
    resp = await client.post(
        "/internal/assignments", json={"user": user, "role": "admin"}, auth=AsService("auth-jwt")
    )
    assert resp.status_code in (200, 201), resp.text


@asynccontextmanager
async def admin_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The running app, with a client signed as an admin (made admin on the way in)."""
    async with running(app) as client:
        await make_admin(client)
        client.auth = AsGateway(ADMIN)
        yield client


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """auth-rbac on a fresh SQLite file, and an admin client for it."""
    async with admin_client(create_app(rbac_settings(tmp_path))) as client:
        yield client
