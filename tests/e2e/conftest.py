"""A real local stack (``edgectl up``) on shifted ports, once per backend flavour."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import PG_URL, REDIS_URL
from tests.worker import PORT_SHIFT

ROOT = Path(__file__).parents[2]
TOPOLOGY = ROOT / "deploy/local/topology.toml"


def instance_id(service: str, port: int, region: str | None = None) -> str:
    """The id the stack gives the instance that the checked-in topology puts on ``port``."""
    return f"{service}-{region}-{port + PORT_SHIFT}" if region else f"{service}-{port + PORT_SHIFT}"


READY_TIMEOUT = 90.0


@dataclass
class Stack:
    flavour: str
    var_dir: Path
    public: str
    admin: str
    ports: dict[str, int]
    ready_seconds: float
    env: dict[str, str] = field(default_factory=dict)

    def pid(self, instance: str) -> int:
        return int((self.var_dir / "run" / f"{instance}.pid").read_text())

    def log_lines(self, instance: str) -> list[str]:
        return (self.var_dir / "log" / f"{instance}.log").read_text().splitlines()


def shifted_topology(path: Path) -> dict[str, int]:
    """Copy the checked-in topology with every port moved by PORT_SHIFT."""
    text = TOPOLOGY.read_text()
    text = re.sub(
        r"(port\s*=\s*)(\d+)", lambda m: f"{m.group(1)}{int(m.group(2)) + PORT_SHIFT}", text
    )
    path.write_text(text)
    return {
        "public": 7001 + PORT_SHIFT,
        "admin": 7080 + PORT_SHIFT,
    }


def _pg_admin_dsn() -> str:
    return PG_URL.replace("postgresql+asyncpg://", "postgresql://")


async def _create_database(name: str) -> None:
    conn = await asyncpg.connect(_pg_admin_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(name: str) -> None:
    conn = await asyncpg.connect(_pg_admin_dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=["sqlite-memory", "postgres-redis"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    flavour: str = request.param
    base = tmp_path_factory.mktemp(f"stack-{flavour}")
    topology = base / "topology.toml"
    ports = shifted_topology(topology)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    database = None
    if flavour == "postgres-redis":
        database = f"edge_e2e_{uuid.uuid4().hex[:8]}"
        asyncio.run(_create_database(database))
        env["EDGE_DATABASE_URL"] = PG_URL.rsplit("/", 1)[0] + "/" + database
        env["EDGE_REDIS_URL"] = REDIS_URL
    var_dir = base / "var"
    log_path = base / "edgectl.log"
    log = log_path.open("w")
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgectl",
            "--topology",
            str(topology),
            "--var-dir",
            str(var_dir),
            "up",
            "--ready-timeout",
            str(READY_TIMEOUT),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    ready = False
    while proc.poll() is None and time.monotonic() - started < READY_TIMEOUT + 15:
        if re.search(r"^All \d+ processes ready", log_path.read_text(), re.M):
            ready = True
            break
        time.sleep(0.2)
    ready_seconds = time.monotonic() - started
    try:
        assert ready, "stack did not come up:\n" + log_path.read_text()[-4000:]
        yield Stack(
            flavour=flavour,
            var_dir=var_dir,
            public=f"http://127.0.0.1:{ports['public']}",
            admin=f"http://127.0.0.1:{ports['admin']}",
            ports=ports,
            ready_seconds=ready_seconds,
            env=env,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if database:
            asyncio.run(_drop_database(database))


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c
