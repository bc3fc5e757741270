"""sv-log on each of its stores: SQLite, PostgreSQL, and MongoDB's wire protocol (nx-27017)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from edgelib.identity import Identity
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from sv_log.config import Settings
from sv_log.main import create_app
from tests.conftest import PG_URL
from tests.helpers import grant, running
from tests.worker import free_port

SERVICE = ServiceSigner("sv-user", DEV_SERVICE_SECRET).to("sv-log")
GATEWAY = ServiceSigner("gateway-api", DEV_SERVICE_SECRET).to("sv-log")
READER = Identity("u-1", "ops", "east", "s-1", "web")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="session")
def nx_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A MongoDB wire-protocol server (nx-27017, SQLite underneath) for this test session."""
    exe = shutil.which("nx-27017", path=os.path.dirname(sys.executable))
    assert exe, "nx-27017 is a dev dependency; run uv sync"
    port = free_port()
    data = tmp_path_factory.mktemp("nx")
    log = (data / "nx.log").open("w")
    proc = subprocess.Popen(
        # Its PID file defaults to one path for the whole machine: give it ours, so test
        # sessions running side by side each get their own server.
        [
            exe,
            "--data-dir",
            str(data),
            "-p",
            str(port),
            "--pid-file",
            str(data / "nx.pid"),
            "--log-file",
            str(data / "nx-daemon.log"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert proc.poll() is None, (data / "nx.log").read_text()
                time.sleep(0.1)
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def settings_for(store: str, tmp_path: Path, extra: dict[str, Any], nx: str = "") -> Settings:
    """sv-log's settings for one store; a PostgreSQL schema is named, not yet made."""
    if store == "sqlite":
        return Settings(var_dir=tmp_path, **extra)
    if store == "postgres":
        schema = f"t_{uuid.uuid4().hex[:12]}"
        return Settings(var_dir=tmp_path, database_url=PG_URL, database_schema=schema, **extra)
    return Settings(var_dir=tmp_path, database_url=f"{nx}/logs_{uuid.uuid4().hex[:10]}", **extra)


async def drop_schema(settings: Settings) -> None:
    if settings.database_schema is None:
        return
    engine = create_async_engine(PG_URL)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{settings.database_schema}" CASCADE'))
    await engine.dispose()


STORES = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.integration),
    "mongo",
]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def log_settings(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    nx = request.getfixturevalue("nx_url") if store == "mongo" else ""
    return settings_for(store, tmp_path, {}, nx)


@asynccontextmanager
async def open_sv_log(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """sv-log running in-process on ``settings``; its PostgreSQL schema is dropped after."""
    app = grant(create_app(settings), READER.user_id, "logs:read")
    try:
        async with running(app) as client:
            yield app, client
    finally:
        await drop_schema(settings)


@pytest.fixture
async def sv_log(log_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with open_sv_log(log_settings) as (_app, client):
        yield client


def record(message: str = "hello", **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ts": datetime.now(UTC).isoformat(),
        "service": "sv-user",
        "instance": "sv-user-east-7201",
        "region": "east",
        "level": "info",
        "message": message,
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


def signed(body: bytes, path: str = "/internal/logs", **headers: str) -> dict[str, str]:
    return {"content-type": "application/json", **headers, **SERVICE.sign("POST", path, body)}


async def ship(
    client: httpx.AsyncClient, records: list[dict[str, Any]], **headers: str
) -> httpx.Response:
    body = orjson.dumps({"records": records})
    return await client.post("/internal/logs", content=body, headers=signed(body, **headers))


def reader(target: str) -> dict[str, str]:
    """What the gateway adds to a request it authorised for READER."""
    return GATEWAY.sign("GET", target, None, identity=READER.encode())


async def query(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    url = httpx.URL("/api/v1/logs/records", params=params)
    target = url.raw_path.decode()
    resp = await client.get(target, headers=reader(target))
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def stored(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """What the tests shipped (sv-log's own records land in the same store)."""
    return list((await query(client, limit=1000, service="sv-user"))["items"])


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
