"""sv-config in-process on SQLite and on PostgreSQL, with callers as the gateway signs them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from edgelib.identity import Identity
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from sv_config.config import Settings
from sv_config.main import create_app
from tests.conftest import PG_URL, REDIS_URL
from tests.helpers import grant, running

GATEWAY = ServiceSigner("gateway-api", DEV_SERVICE_SECRET).to("sv-config")
SERVICE = ServiceSigner("sv-user", DEV_SERVICE_SECRET).to("sv-config")
ALICE = Identity("u-alice", "alice", "east", "s-1", "web")
BOB = Identity("u-bob", "bob", "west", "s-2", "web")
#: A plain user: she reads, but holds neither config:edit nor config:publish.
CAROL = Identity("u-carol", "carol", "east", "s-3", "web")


def config_app(settings: Settings) -> FastAPI:
    """sv-config where ALICE and BOB hold config:edit and config:publish (tests' auth-rbac)."""
    app = create_app(settings)
    for editor in (ALICE, BOB):
        grant(app, editor.user_id, "config:edit", "config:publish")
    return app


DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.integration)]


def settings_for(database: str, tmp_path: Path, **extra: Any) -> Settings:
    if database == "postgres":
        schema = f"t_{uuid.uuid4().hex[:12]}"
        return Settings(
            var_dir=tmp_path,
            database_url=PG_URL,
            database_schema=schema,
            redis_url=extra.pop("redis_url", REDIS_URL),
            **extra,
        )
    return Settings(var_dir=tmp_path, **extra)


async def drop_schema(settings: Settings) -> None:
    if settings.database_schema is None or not (settings.database_url or "").startswith("postgres"):
        return
    engine = create_async_engine(PG_URL)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{settings.database_schema}" CASCADE'))
    await engine.dispose()


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def config_settings(database: str, tmp_path: Path) -> AsyncIterator[Settings]:
    settings = settings_for(database, tmp_path, watch_fallback_interval=0.5)
    yield settings
    await drop_schema(settings)


class Caller:
    """Talks to sv-config as the gateway would forward ``identity``'s requests."""

    def __init__(self, client: httpx.AsyncClient, identity: Identity = ALICE) -> None:
        self.client = client
        self.identity = identity

    def as_(self, identity: Identity) -> Caller:
        return Caller(self.client, identity)

    async def request(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        url = httpx.URL(path, params=params) if params else httpx.URL(path)
        target = url.raw_path.decode()
        headers = GATEWAY.sign(method, target, None, identity=self.identity.encode())
        content = None if body is None else orjson.dumps(body)
        if content is not None:
            headers["content-type"] = "application/json"
        return await self.client.request(method, target, content=content, headers=headers)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.request("GET", path, params=params or None)

    async def post(self, path: str, body: Any = None) -> httpx.Response:
        return await self.request("POST", path, {} if body is None else body)

    async def put(self, path: str, body: Any) -> httpx.Response:
        return await self.request("PUT", path, body)

    async def patch(self, path: str, body: Any) -> httpx.Response:
        return await self.request("PATCH", path, body)

    async def delete(self, path: str) -> httpx.Response:
        return await self.request("DELETE", path)

    # Shortcuts for the common steps of a test.

    async def namespace(self, name: str = "flags", **fields: Any) -> dict[str, Any]:
        body = {"name": name, "environment": "test", **fields}
        resp = await self.post("/api/v1/config/namespaces", body)
        assert resp.status_code == 201, resp.text
        return dict(resp.json())

    async def set(self, ns: str, key: str, value: Any, **fields: Any) -> dict[str, Any]:
        cluster = fields.pop("cluster", "default")
        resp = await self.put(
            f"/api/v1/config/drafts/test/{cluster}/{ns}/items/{key}", {"value": value, **fields}
        )
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    async def publish(self, ns: str, comment: str = "", cluster: str = "default") -> httpx.Response:
        return await self.post(f"/api/v1/config/releases/test/{cluster}/{ns}", {"comment": comment})


async def watch(
    client: httpx.AsyncClient,
    namespaces: list[dict[str, Any]],
    *,
    instance: str = "svc-1",
    region: str | None = "east",
    labels: dict[str, str] | None = None,
    wait: float = 0.0,
    environment: str = "test",
) -> httpx.Response:
    """One long poll as a signed service would make it."""
    body = orjson.dumps(
        {
            "environment": environment,
            "client": {"instance": instance, "region": region, "labels": labels or {}},
            "namespaces": namespaces,
            "wait": wait,
        }
    )
    headers = {
        "content-type": "application/json",
        **SERVICE.sign("POST", "/internal/config/watch", body),
    }
    return await client.post("/internal/config/watch", content=body, headers=headers)


@pytest.fixture
async def sv_config(config_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(config_app(config_settings)) as client:
        yield client


@pytest.fixture
def alice(sv_config: httpx.AsyncClient) -> Caller:
    return Caller(sv_config, ALICE)
