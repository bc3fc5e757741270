"""sv-notice in-process on two flavours: SQLite with the in-process queue and backend, or
PostgreSQL with Redis (backend and Redis Streams queue); plus real receivers for its channels."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from aiohttp import web
from fastapi import FastAPI
from redis import asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from edgelib.identity import Identity
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from sv_notice.config import Settings
from sv_notice.main import create_app
from tests.conftest import PG_URL, REDIS_URL
from tests.helpers import grant, running
from tests.worker import free_port

GATEWAY = ServiceSigner("gateway-api", DEV_SERVICE_SECRET).to("sv-notice")
SERVICE = ServiceSigner("sv-money", DEV_SERVICE_SECRET).to("sv-notice")
ADMIN = Identity("admin-0001", "admin", "east", "s-admin", "web")

TRANSFER_VARS = {
    "amount": "12.50",
    "currency": "EUR",
    "from_username": "bob",
    "transfer_id": "t-1",
}


def new_user(name: str = "alice") -> Identity:
    return Identity(str(uuid.uuid4()), name, "east", uuid.uuid4().hex[:8], "web")


def gateway_headers(method: str, target: str, identity: Identity) -> dict[str, str]:
    """What the gateway adds to a request it forwards for ``identity``."""
    return GATEWAY.sign(method, target, None, identity=identity.encode())


def target_of(path: str, params: dict[str, Any] | None = None) -> str:
    return httpx.URL(path, params=params).raw_path.decode()


@dataclass
class NoticeApi:
    """sv-notice's API as the gateway (for users and admins) or a service would call it."""

    http: httpx.AsyncClient
    app: FastAPI

    async def call(
        self,
        method: str,
        path: str,
        identity: Identity,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        target = target_of(path, params)
        headers = gateway_headers(method, target, identity)
        body = None if json is None else orjson.dumps(json)
        if body is not None:
            headers["content-type"] = "application/json"
        return await self.http.request(method, target, content=body, headers=headers)

    async def send(self, **fields: Any) -> httpx.Response:
        return await self.call("POST", "/api/v1/notices/admin/send", ADMIN, json=fields)

    async def events(self, *events: dict[str, Any]) -> httpx.Response:
        body = orjson.dumps({"events": list(events)})
        signed = SERVICE.sign("POST", "/internal/events", body)
        headers = {"content-type": "application/json", **signed}
        return await self.http.post("/internal/events", content=body, headers=headers)

    async def inbox(self, user: Identity, **params: Any) -> dict[str, Any]:
        resp = await self.call("GET", "/api/v1/notices", user, params=params or None)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    async def notice_status(self, notice_id: str) -> dict[str, Any]:
        resp = await self.call("GET", f"/api/v1/notices/admin/notices/{notice_id}", ADMIN)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())

    async def wait_delivered(
        self, notice_id: str, channel: str, status: str = "sent", timeout: float = 10.0
    ) -> dict[str, Any]:
        """The channel's delivery once it reaches ``status``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            doc = await self.notice_status(notice_id)
            delivery = next(d for d in doc["deliveries"] if d["channel"] == channel)
            if delivery["status"] == status:
                return dict(delivery)
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{channel} still {delivery['status']}: {delivery}")
            await asyncio.sleep(0.05)


FLAVOURS = ["sqlite-memory", pytest.param("postgres-redis", marks=pytest.mark.integration)]


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def settings_for(flavour: str, var_dir: Path, **extra: Any) -> Settings:
    """Fast retries, an SMTP-less default, and a storage flavour."""
    base: dict[str, Any] = {
        "var_dir": var_dir,
        "region": "east",
        "log_json": False,
        "retry_base": 0.05,
        "retry_max": 0.4,
        "max_attempts": 5,
        "sweep_interval": 0.5,
        "queue_namespace": f"test:notice:{uuid.uuid4().hex[:10]}",
        **extra,
    }
    if flavour == "postgres-redis":
        base.update(
            database_url=PG_URL,
            database_schema=f"t_{uuid.uuid4().hex[:12]}",
            redis_url=REDIS_URL,
        )
    return Settings(**base)


async def cleanup(settings: Settings) -> None:
    if settings.database_schema:
        engine = create_async_engine(PG_URL)
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{settings.database_schema}" CASCADE'))
        await engine.dispose()
    if settings.redis_url.startswith("redis://") and settings.queue_namespace:
        redis = aioredis.Redis.from_url(settings.redis_url)
        keys = [k async for k in redis.scan_iter(match=settings.queue_namespace + ":*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@asynccontextmanager
async def open_notice(settings: Settings, **options: Any) -> AsyncIterator[NoticeApi]:
    app = grant(create_app(settings, **options), ADMIN.user_id, "notices:admin")
    try:
        async with running(app) as http:
            yield NoticeApi(http, app)
    finally:
        await cleanup(settings)


@pytest.fixture
async def notice(flavour: str, tmp_path: Path) -> AsyncIterator[NoticeApi]:
    async with open_notice(settings_for(flavour, tmp_path)) as api:
        yield api


@asynccontextmanager
async def serving(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """``app`` on a real loopback port (uvicorn, lifespan included); yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("server did not start")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class WebhookReceiver:
    """A real HTTP receiver answering from a script of statuses (then 200)."""

    statuses: list[int] = field(default_factory=list)
    always: int | None = None
    calls: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    url: str = ""

    @property
    def accepted(self) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b, status in self.calls if status == 200]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.always is not None:
            status = self.always
        else:
            status = self.statuses.pop(0) if self.statuses else 200
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.calls.append((headers, body, status))
        return web.Response(status=status, text="ok" if status == 200 else "nope")


@asynccontextmanager
async def webhook_receiver(receiver: WebhookReceiver) -> AsyncIterator[WebhookReceiver]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()
