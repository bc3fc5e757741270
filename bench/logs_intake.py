"""sv-log intake throughput on PostgreSQL: records per second, end to end and store only.

Starts a real sv-log process (uvicorn) on a fresh PostgreSQL schema, then posts signed,
gzipped batches to ``/internal/logs`` from concurrent senders for a fixed time. Also
times the store alone (``SqlLogStore.insert``, in this process) to show what HTTP,
gzip, signing and validation cost on top. Loopback only; every loop is bounded.

    python bench/logs_intake.py [--seconds 8] [--json bench/results/logs.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import os
import platform
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from edgelib.db import Database
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from sv_log.repository import SqlLogStore
from sv_log.schemas import IntakeRecord

ROOT = Path(__file__).parents[1]
PG_URL = os.environ.get(
    "EDGE_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
SIGNER = ServiceSigner("bench", DEV_SERVICE_SECRET)


def make_records(n: int, seed: int) -> list[dict[str, object]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "ts": now,
            "service": "sv-user",
            "instance": "sv-user-east-7201",
            "region": "east",
            "level": "info" if i % 10 else "warning",
            "message": f"GET /api/v1/users/{seed}-{i} 200 user profile read",
            "trace_id": uuid.uuid4().hex,
            "request_id": uuid.uuid4().hex,
            "attributes": {"logger": "edge.access", "status": 200, "duration_ms": 1.25},
        }
        for i in range(n)
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def drop_schema(schema: str) -> None:
    engine = create_async_engine(PG_URL)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await engine.dispose()


async def count(schema: str) -> int:
    engine = create_async_engine(PG_URL, connect_args={"server_settings": {"search_path": schema}})
    async with engine.connect() as conn:
        value = (await conn.execute(text("SELECT count(*) FROM log_records"))).scalar_one()
    await engine.dispose()
    return int(value)


@contextlib.contextmanager
def sv_log_process(schema: str, port: int, log: Path) -> object:
    env = {
        **os.environ,
        "SV_LOG_PORT": str(port),
        "SV_LOG_DATABASE_URL": PG_URL,
        "SV_LOG_DATABASE_SCHEMA": schema,
        "SV_LOG_LOG_LEVEL": "WARNING",
        "EDGE_VAR_DIR": str(log.parent),
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sv_log"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            proc.terminate()
            proc.wait(15)


async def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url + "/readyz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError("sv-log did not become ready")


async def http_intake(url: str, batch: int, senders: int, seconds: float) -> dict[str, float]:
    bodies = [
        gzip.compress(orjson.dumps({"records": make_records(batch, s)}), 1) for s in range(16)
    ]
    accepted = 0
    requests = 0
    deadline = time.monotonic() + seconds

    async def sender(session: aiohttp.ClientSession, k: int) -> None:
        nonlocal accepted, requests
        i = k
        while time.monotonic() < deadline:
            body = bodies[i % len(bodies)]
            i += senders
            headers = {
                "content-type": "application/json",
                "content-encoding": "gzip",
                **SIGNER.sign("POST", "/internal/logs", body),
            }
            async with session.post(url + "/internal/logs", data=body, headers=headers) as resp:
                payload = await resp.json(content_type=None)
                if resp.status != 202:
                    raise RuntimeError(f"intake answered {resp.status}: {payload}")
                accepted += payload["accepted"]
                requests += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(sender(session, k) for k in range(senders)))
    elapsed = time.perf_counter() - started
    return {
        "records": accepted,
        "seconds": round(elapsed, 2),
        "records_per_s": round(accepted / elapsed),
        "batches_per_s": round(requests / elapsed, 1),
    }


async def store_only(schema: str, batch: int, seconds: float) -> dict[str, float]:
    database = Database(PG_URL, schema=schema)
    store = SqlLogStore(database)
    batches = [[IntakeRecord.model_validate(r) for r in make_records(batch, s)] for s in range(8)]
    inserted = 0
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    i = 0
    while time.monotonic() < deadline:
        inserted += len(await store.insert(batches[i % len(batches)]))
        i += 1
    elapsed = time.perf_counter() - started
    await database.dispose()
    return {
        "records": inserted,
        "seconds": round(elapsed, 2),
        "records_per_s": round(inserted / elapsed),
    }


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    schema = f"bench_logs_{uuid.uuid4().hex[:8]}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    work = Path(os.environ.get("TMPDIR", "/tmp")) / schema
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "database": "PostgreSQL (" + PG_URL.rsplit("@", 1)[-1] + ")",
        "runs": [],
    }
    runs: list[dict[str, object]] = results["runs"]  # type: ignore[assignment]
    try:
        with sv_log_process(schema, port, work / "sv-log.log"):
            await wait_ready(url)
            for batch, senders in ((100, 1), (500, 1), (500, 4)):
                r = await http_intake(url, batch, senders, args.seconds)
                runs.append(
                    {"path": "HTTP intake (gzip, signed)", "batch": batch, "senders": senders, **r}
                )
                say(
                    f"HTTP  batch={batch:<4} senders={senders}  {r['records_per_s']:>8,} records/s"
                    f"  ({r['batches_per_s']} batches/s)"
                )
        for batch in (100, 500):
            r = await store_only(schema, batch, args.seconds)
            runs.append(
                {"path": "store only (SqlLogStore.insert)", "batch": batch, "senders": 1, **r}
            )
            say(f"store batch={batch:<4} senders=1  {r['records_per_s']:>8,} records/s")
        results["rows_after"] = await count(schema)
    finally:
        await drop_schema(schema)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        say(f"results: {args.json}")


if __name__ == "__main__":
    asyncio.run(main())
