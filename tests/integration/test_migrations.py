"""Every service's migrations apply cleanly on PostgreSQL and on SQLite, and revert."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from edgectl.registry import load_registry
from edgelib.migrations import alembic_config, upgrade

ROOT = Path(__file__).parents[2]
MIGRATION_DIRS = sorted(ROOT.glob("app/*/*/migrations"))
SERVICES = [p.parents[1].name for p in MIGRATION_DIRS]


def test_every_database_service_has_migrations() -> None:
    registry = load_registry(ROOT / "deploy/services.toml")
    assert set(SERVICES) == {s.name for s in registry.services if s.database}
    assert {"sv-region", "auth-jwt", "sv-money", "sv-notice"} <= set(SERVICES)


async def _tables(url: str, schema: str | None) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names(schema=schema))
    finally:
        await engine.dispose()
    return set(names)


def _round_trip(directory: Path, url: str, schema: str | None, lock_dir: Path) -> None:
    table = "alembic_version_" + directory.parents[1].name.replace("-", "_")
    upgrade(directory, url, schema=schema, version_table=table, lock_dir=lock_dir)
    cfg = alembic_config(directory, url, schema=schema, version_table=table)
    command.downgrade(cfg, "base")
    upgrade(directory, url, schema=schema, version_table=table, lock_dir=lock_dir)


@pytest.mark.integration
@pytest.mark.parametrize("directory", MIGRATION_DIRS, ids=SERVICES)
async def test_migrations_apply_and_revert_on_postgresql(
    directory: Path, pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(_round_trip, directory, pg_url, pg_schema, tmp_path)
    tables = await _tables(pg_url, pg_schema)
    assert "alembic_version_" + directory.parents[1].name.replace("-", "_") in tables
    assert len(tables) >= 2


@pytest.mark.parametrize("directory", MIGRATION_DIRS, ids=SERVICES)
async def test_migrations_apply_and_revert_on_sqlite(directory: Path, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    await asyncio.to_thread(_round_trip, directory, url, None, tmp_path)
    assert len(await _tables(url, None)) >= 2
