"""Two auth-rbac instances on one database agree within a second of a change.

Each instance here is its own app with its own backend. On SQLite with the
in-process backends nothing is shared but the file: the version-row poll carries the
change. On PostgreSQL with Redis the poll is slowed to 10 s, so the pub/sub
notification has to carry it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from auth_rbac.main import create_app
from tests.auth_rbac.conftest import (
    ADMIN,
    AsGateway,
    admin_client,
    fresh_pg_schema,
    rbac_settings,
)
from tests.helpers import running

GRANT = {"sub": "auditor", "obj": "wallet", "act": "audit"}
ASSIGNMENT = {"user": "u-bob", "role": "auditor"}
CHECK = {"sub": "u-bob", "obj": "wallet", "act": "audit"}


async def allowed(client: httpx.AsyncClient) -> bool:
    resp = await client.post("/api/v1/rbac/enforce", json=CHECK)
    assert resp.status_code == 200, resp.text
    value: bool = resp.json()["allowed"]
    return value


async def seconds_until(client: httpx.AsyncClient, expected: bool, limit: float = 3.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if await allowed(client) is expected:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"still {not expected} after {limit}s")


FLAVOURS = ["sqlite-polling", pytest.param("postgres-redis", marks=pytest.mark.integration)]


@pytest.fixture(params=FLAVOURS)
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path, pg_url: str, redis_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with AsyncExitStack() as stack:
        if request.param == "sqlite-polling":
            settings = [rbac_settings(tmp_path, port=p) for p in (7103, 7113)]
        else:
            schema = await stack.enter_async_context(fresh_pg_schema())
            settings = [
                rbac_settings(
                    tmp_path, database_url=pg_url, schema=schema, redis_url=redis_url, port=p
                )
                for p in (7103, 7113)
            ]
            for s in settings:
                s.poll_interval = 10.0
        first = await stack.enter_async_context(admin_client(create_app(settings[0])))
        second = await stack.enter_async_context(running(create_app(settings[1])))
        second.auth = AsGateway(ADMIN)
        await first.post("/api/v1/rbac/roles", json={"name": "auditor"})
        await first.post("/api/v1/rbac/policies", json=GRANT)
        yield first, second


async def test_assign_and_revoke_through_one_instance_reach_the_other_within_1s(
    pair: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    first, second = pair
    assert (await first.post("/api/v1/rbac/assignments", json=ASSIGNMENT)).status_code == 201
    assert await allowed(first)  # the writing instance answers from its new policy at once
    assert await seconds_until(second, True) < 1.0

    revoked = await first.request("DELETE", "/api/v1/rbac/assignments", json=ASSIGNMENT)
    assert revoked.status_code == 204
    assert not await allowed(first)
    assert await seconds_until(second, False) < 1.0
