"""sv-money in-process: two regions (east, west) and a stand-in directory, talking over
ASGI transports, on SQLite files or on PostgreSQL schemas.

Callers are signed as the gateway would sign them, so the tests need no identity stack.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from edgelib.identity import Identity
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from sv_money.config import Settings
from sv_money.main import create_app
from tests.conftest import PG_URL
from tests.helpers import grant, running
from tests.sv_money.directory_stub import directory_app

GATEWAY = ServiceSigner("gateway-api", DEV_SERVICE_SECRET).to("sv-money")
PEER = ServiceSigner("sv-money", DEV_SERVICE_SECRET).to("sv-money")
REGIONS = ("east", "west")
#: username -> home region; ``admin`` has the wallet:topup and wallet:audit permissions
#: (which the gateway checks, and sv-money again on the signed identity).
PEOPLE = {"alice": "east", "bob": "east", "erin": "east", "admin": "east"}
PEOPLE |= {"carol": "west", "dave": "west"}


class Hosts(httpx.AsyncBaseTransport):
    """Routes each request to the in-process app named by its host."""

    def __init__(self) -> None:
        self.apps: dict[str, httpx.AsyncBaseTransport] = {}

    def add(self, host: str, app: Any) -> None:
        self.apps[host] = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.apps.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no app at {request.url.host}", request=request)
        return await transport.handle_async_request(request)


def signed(identity: Identity, method: str, target: str) -> dict[str, str]:
    return GATEWAY.sign(method, target, None, identity=identity.encode())


@dataclass
class Money:
    """Two regions of sv-money and the people who use them."""

    apps: dict[str, FastAPI]
    clients: dict[str, httpx.AsyncClient]
    hosts: Hosts
    users: dict[str, Identity] = field(default_factory=dict)

    async def call(
        self,
        who: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        key: str | None = None,
        params: dict[str, Any] | None = None,
        region: str | None = None,
    ) -> httpx.Response:
        """``who`` calls sv-money of their home region (or ``region``) through the 'gateway'."""
        identity = self.users[who]
        target = httpx.URL(path, params=params).raw_path.decode()
        headers = signed(identity, method, target)
        if key is not None:
            headers["idempotency-key"] = key
        client = self.clients[region or identity.region]
        return await client.request(method, target, json=json, headers=headers)

    async def topup(self, username: str, amount: int, currency: str = "USD") -> dict[str, Any]:
        response = await self.call(
            "admin",
            "POST",
            "/api/v1/wallet/topups",
            json={"username": username, "amount": amount, "currency": currency},
            key=str(uuid.uuid4()),
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def pay(
        self, payer: str, payee: str, amount: int, currency: str = "USD", *, key: str | None = None
    ) -> httpx.Response:
        return await self.call(
            payer,
            "POST",
            "/api/v1/wallet/transfers",
            json={"to_username": payee, "amount": amount, "currency": currency},
            key=key or str(uuid.uuid4()),
        )

    async def balance(self, who: str, currency: str = "USD") -> dict[str, int]:
        response = await self.call(who, "GET", "/api/v1/wallet")
        assert response.status_code == 200, response.text
        for account in response.json():
            if account["currency"] == currency:
                return dict(account)
        return {"currency": currency, "balance": 0, "held": 0, "available": 0}  # type: ignore[dict-item]

    async def audit(self, region: str) -> dict[str, Any]:
        response = await self.call(
            "admin", "GET", "/api/v1/wallet/audit", params={"region": region}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def internal(
        self, region: str, method: str, path: str, *, json: Any = None
    ) -> httpx.Response:
        """A signed service call straight to ``region``'s sv-money."""
        body = b"" if json is None else httpx.Request("POST", "/", json=json).content
        headers = PEER.sign(method, path, body)
        if json is not None:
            headers["content-type"] = "application/json"
        return await self.clients[region].request(method, path, content=body, headers=headers)


def settings_for(region: str, base: Path, schema: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "region": region,
        "var_dir": base / region,
        "port": 7211 if region == "east" else 7311,
        "log_json": False,
        "sv_region_url": "http://directory",
        "peers": {r: f"http://money-{r}" for r in REGIONS},
        "hold_sweep_interval": 0.1,
        "outbox_interval": 0.1,
        "peer_timeout": 1.0,
    }
    if schema is not None:
        values["database_url"] = PG_URL
        values["database_schema"] = f"{schema}_{region}"
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def open_money(
    base: Path, *, schema: str | None = None, **overrides: Any
) -> AsyncIterator[Money]:
    """Both regions running in-process, with the people of PEOPLE known to the directory."""
    users = {
        name: Identity(str(uuid.uuid4()), name, region, f"s-{name}", "web")
        for name, region in PEOPLE.items()
    }
    hosts = Hosts()
    hosts.add("directory", directory_app({n: (u.user_id, u.region) for n, u in users.items()}))
    apps = {
        r: create_app(settings_for(r, base, schema, **overrides), transport=hosts) for r in REGIONS
    }
    for region, app in apps.items():
        hosts.add(f"money-{region}", app)
        grant(app, users["admin"].user_id, "wallet:topup", "wallet:audit")
    async with AsyncExitStack() as stack:
        clients = {r: await stack.enter_async_context(running(app)) for r, app in apps.items()}
        yield Money(apps=apps, clients=clients, hosts=hosts, users=users)


@pytest.fixture
async def money(tmp_path: Path) -> AsyncIterator[Money]:
    """Both regions on SQLite files."""
    async with open_money(tmp_path) as regions:
        yield regions


@pytest.fixture
async def pg_money(tmp_path: Path, pg_schema: str) -> AsyncIterator[Money]:
    """Both regions on PostgreSQL (one schema each), for tests marked integration."""
    try:
        async with open_money(tmp_path, schema=pg_schema) as regions:
            yield regions
    finally:
        await drop_schemas(pg_schema)


async def drop_schemas(pg_schema: str) -> None:
    """Drop both regions' schemas made by :func:`open_money` on ``pg_schema``."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_URL)
    async with engine.begin() as conn:
        for region in REGIONS:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{pg_schema}_{region}" CASCADE'))
    await engine.dispose()
