"""Shared fixtures (the real PostgreSQL and Redis the integration tests use) and hooks."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from edgelib.backends import Backend, open_backend
from gateway_api import native as _gateway_native
from tests import scheduling
from tests.worker import redis_url as _own_database

# The tests are an entry point: the gateway's compiled hot path is switched on here,
# before any test module imports the gateway (gateway_api/native.py).
_gateway_native.activate()

PG_URL = os.environ.get(
    "EDGE_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
#: Each pytest process (xdist worker, session) gets its own database: see tests/worker.py.
REDIS_URL = _own_database(os.environ.get("EDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))


# pytest-xdist (make test runs ``pytest -n 2``): whole units per worker, see tests/scheduling.py.
# Optional hooks: the xdist ones mean nothing, and are never called, when it is not loaded.


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput[scheduling.UNITS_DIR] = str(scheduling.units_dir(node.config))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadscope":
        return None
    return scheduling.UnitScheduling(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    scheduling.prepare_worker(config, items)


def pytest_unconfigure(config: pytest.Config) -> None:
    scheduling.remove_units_dir(config)


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("redis", id="redis", marks=pytest.mark.integration),
    ]
)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """The in-process backend and real Redis, for tests that must hold on both."""
    b = open_backend("memory://" if request.param == "memory" else REDIS_URL)
    yield b
    await b.close()


@pytest.fixture
def pg_url() -> str:
    return PG_URL


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    engine = create_async_engine(PG_URL)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    await engine.dispose()
