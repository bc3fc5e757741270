"""Alembic, driven from code: one migrations folder and one version table per service."""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from edgelib.db import ensure_sqlite_dir


def alembic_config(
    script_location: Path, url: str, *, schema: str | None, version_table: str
) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["edge_schema"] = schema
    cfg.attributes["edge_version_table"] = version_table
    return cfg


@contextmanager
def _migration_lock(url: str, lock_dir: Path) -> Iterator[None]:
    """Serialise concurrent upgrades of one SQLite file (several local instances)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        yield
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock_path = lock_dir / (Path(parsed.database).name + ".migrate.lock")
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(
    script_location: Path,
    url: str,
    *,
    schema: str | None,
    version_table: str,
    revision: str = "head",
    lock_dir: Path = Path("var/run"),
) -> None:
    """Apply migrations up to ``revision`` (blocking; call from a thread in async code)."""
    ensure_sqlite_dir(url)
    cfg = alembic_config(script_location, url, schema=schema, version_table=version_table)
    with _migration_lock(url, lock_dir):
        command.upgrade(cfg, revision)


async def upgrade_async(
    script_location: Path,
    url: str,
    *,
    schema: str | None,
    version_table: str,
    lock_dir: Path = Path("var/run"),
) -> None:
    await asyncio.to_thread(
        upgrade,
        script_location,
        url,
        schema=schema,
        version_table=version_table,
        lock_dir=lock_dir,
    )


def run_env(target_metadata: MetaData) -> None:
    """Body of every service's ``migrations/env.py`` (online mode, async engine)."""
    from alembic import context

    cfg = context.config
    url = cfg.get_main_option("sqlalchemy.url")
    assert url is not None
    schema: str | None = cfg.attributes.get("edge_schema")
    version_table: str = cfg.attributes.get("edge_version_table", "alembic_version")

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=version_table,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        connect_args = {}
        if schema and make_url(url).get_backend_name() == "postgresql":
            connect_args = {"server_settings": {"search_path": schema}}
        engine = create_async_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
        try:
            async with engine.connect() as conn:
                if schema and conn.dialect.name == "postgresql":
                    from sqlalchemy import text

                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                    await conn.commit()
                await conn.run_sync(do_run)
                await conn.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())
