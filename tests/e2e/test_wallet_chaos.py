"""Chaos: 32 clients pay each other (half of it across regions) while east's sv-money is
killed with SIGKILL and restarted. Every client retries a timed-out or refused-by-a-crash
request with the same Idempotency-Key until it gets an answer.

Afterwards both audits are clean, the money is all there, no balance is negative, and
every transfer a client was told about exists exactly once, on both sides.

Real processes on PostgreSQL: sv-money for east and west, and a stand-in for sv-region's
directory (``tests/sv_money/directory_stub.py``); callers are signed as the gateway signs
them. Ports come from EDGE_E2E_PORT_SHIFT (7161, 7261, 7361 shifted), clear of the ports
the e2e stack uses.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from edgelib.identity import Identity
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from tests.conftest import PG_URL
from tests.e2e.conftest import PORT_SHIFT, ROOT
from tests.policy_server import policy_server

# Starting its processes takes most of a minute on a loaded 2-core machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

GATEWAY = ServiceSigner("gateway-api", DEV_SERVICE_SECRET).to("sv-money")
PG_DSN = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
DIRECTORY_PORT = 7161 + PORT_SHIFT
MONEY_PORTS = {"east": 7261 + PORT_SHIFT, "west": 7361 + PORT_SHIFT}
CLIENTS = 32
START_BALANCE = 100_000
RUN_SECONDS = 12.0
#: Each client makes at least this many transfers, even on a busy machine...
MIN_PER_CLIENT = 3
#: ...unless the run has lasted this long.
HARD_STOP = 40.0
KILL_AT = 4.0
DOWN_FOR = 1.5


@dataclass
class Region:
    name: str
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sv_money"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class World:
    schema: str
    regions: dict[str, Region]
    users: list[Identity]
    admin: Identity
    directory: subprocess.Popen[bytes]
    tmp: Path
    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)
    began: float = field(default_factory=time.monotonic)


def signed(identity: Identity, method: str, target: str) -> dict[str, str]:
    return GATEWAY.sign(method, target, None, identity=identity.encode())


async def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                async with session.get(url + "/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} not ready:\n" + log.read_text()[-3000:])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    schema = f"chaos_{uuid.uuid4().hex[:8]}"
    users = [
        Identity(str(uuid.uuid4()), f"payer{i:02d}", "east" if i % 2 else "west", f"s{i}", "app")
        for i in range(CLIENTS)
    ]
    admin = Identity(str(uuid.uuid4()), "admin", "east", "s-admin", "web")
    people = {u.username: [u.user_id, u.region] for u in [*users, admin]}
    (tmp_path / "users.json").write_text(json.dumps(people))
    stack = ExitStack()
    rbac = stack.enter_context(policy_server(tmp_path / "rbac", admins=(admin.user_id,)))
    dir_log = tmp_path / "directory.log"
    with dir_log.open("ab") as log:
        directory = subprocess.Popen(
            [sys.executable, "-m", "tests.sv_money.directory_stub", str(DIRECTORY_PORT),
             str(tmp_path / "users.json")],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "SV_MONEY_"))}
    base_env["EDGE_AUTH_RBAC_URL"] = rbac.url
    peers = json.dumps({r: f"http://127.0.0.1:{p}" for r, p in MONEY_PORTS.items()})
    regions = {}
    for name, port in MONEY_PORTS.items():
        env = base_env | {
            "SV_MONEY_REGION": name,
            "SV_MONEY_PORT": str(port),
            "SV_MONEY_DATABASE_URL": PG_URL,
            "SV_MONEY_DATABASE_SCHEMA": f"{schema}_{name}",
            "SV_MONEY_SV_REGION_URL": f"http://127.0.0.1:{DIRECTORY_PORT}",
            "SV_MONEY_PEERS": peers,
            "SV_MONEY_PEER_TIMEOUT": "1.0",
            "SV_MONEY_OUTBOX_INTERVAL": "0.2",
            "SV_MONEY_OUTBOX_ABORT_AFTER": "10",
            "SV_MONEY_LOG_LEVEL": "WARNING",
            "EDGE_VAR_DIR": str(tmp_path / name),
        }
        regions[name] = Region(name, port, env, tmp_path / f"money-{name}.log")
    try:
        for region in regions.values():
            region.start()
        yield World(schema, regions, users, admin, directory, tmp_path)
    finally:
        for region in regions.values():
            region.stop()
        directory.terminate()
        directory.wait(timeout=15)
        stack.close()
        asyncio.run(_drop(schema))


async def _drop(schema: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        for name in MONEY_PORTS:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}_{name}" CASCADE')
    finally:
        await conn.close()


async def call(
    session: aiohttp.ClientSession,
    world: World,
    who: Identity,
    method: str,
    path: str,
    *,
    body: Any = None,
    key: str | None = None,
    region: str | None = None,
    timeout: float = 3.0,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = signed(who, method, path)
    if key is not None:
        headers["idempotency-key"] = key
    data = None
    if body is not None:
        data = orjson.dumps(body)
        headers["content-type"] = "application/json"
    url = world.regions[region or who.region].url + path
    async with session.request(
        method, url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as response:
        headers = {k.lower(): v for k, v in response.headers.items()}
        return response.status, await response.json(content_type=None), headers


async def pay_until_answered(
    session: aiohttp.ClientSession,
    world: World,
    payer: Identity,
    payee: Identity,
    amount: int,
    deadline: float,
    stats: dict[str, int],
) -> None:
    """One transfer: the same key on every retry until a definite answer (or the deadline).

    One first attempt in five gives up after 50 ms, usually while the server is still
    working on it: its retry must find the transfer, not make a second one.
    """
    key = str(uuid.uuid4())
    body = {"to_username": payee.username, "amount": amount, "currency": "USD"}
    timeout = 0.05 if random.random() < 0.2 else 3.0
    while time.monotonic() < deadline:
        try:
            status, doc, headers = await call(
                session,
                world,
                payer,
                "POST",
                "/api/v1/wallet/transfers",
                body=body,
                key=key,
                timeout=timeout,
            )
        except (aiohttp.ClientError, TimeoutError):
            stats["retries"] += 1
            timeout = 3.0
            await asyncio.sleep(random.uniform(0.1, 0.3))
            continue
        if status >= 500:
            stats["retries"] += 1
            await asyncio.sleep(random.uniform(0.1, 0.3))
            continue
        if status == 201:
            stats["replays"] += headers.get("idempotent-replayed") == "true"
            world.acknowledged[key] = doc | {"payer": payer.user_id}
        else:
            assert status == 422, doc
            assert doc["type"].endswith("/insufficient-funds"), doc
            stats["refused"] += 1
        return
    stats["unanswered"] += 1


async def chaos(world: World) -> dict[str, int]:
    for region in world.regions.values():
        assert region.proc is not None
        await wait_ready(region.url, region.proc, region.log)
    stats = {"retries": 0, "replays": 0, "refused": 0, "unanswered": 0, "restarted_after": 0}
    stats["ready_after"] = round(time.monotonic() - world.began, 1)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        for user in world.users:  # top-ups go through east; west's are forwarded there
            status, doc, _ = await call(
                session, world, world.admin, "POST", "/api/v1/wallet/topups",
                body={"username": user.username, "amount": START_BALANCE, "currency": "USD"},
                key=str(uuid.uuid4()),
            )  # fmt: skip
            assert status == 201, doc
        started = time.monotonic()
        stop_at = started + RUN_SECONDS
        answer_by = started + HARD_STOP + 20

        async def client(n: int) -> None:
            rng = random.Random(n)
            payer = world.users[n]
            made = 0
            while time.monotonic() < stop_at or (
                made < MIN_PER_CLIENT and time.monotonic() < started + HARD_STOP
            ):
                made += 1
                payee = rng.choice([u for u in world.users if u is not payer])
                amount = rng.randint(1, 8_000)
                await pay_until_answered(session, world, payer, payee, amount, answer_by, stats)

        async def kill_and_restart() -> None:
            await asyncio.sleep(KILL_AT)
            east = world.regions["east"]
            east.kill()
            await asyncio.sleep(DOWN_FOR)
            east.start()
            assert east.proc is not None
            await wait_ready(east.url, east.proc, east.log)
            stats["restarted_after"] = round(time.monotonic() - started, 1)

        await asyncio.gather(kill_and_restart(), *(client(n) for n in range(CLIENTS)))
        stats["answered_after"] = round(time.monotonic() - started, 1)

        # Let the recovery workers settle what the crash interrupted.
        deadline = time.monotonic() + 30
        reports: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            for name in world.regions:
                # Each region's own sv-money audits it (and compares with the other).
                status, reports[name], _ = await call(
                    session, world, world.admin, "GET", "/api/v1/wallet/audit", region=name,
                    timeout=30,
                )  # fmt: skip
                assert status == 200, reports[name]
            if all(r["ok"] and r["in_flight"] == 0 for r in reports.values()):
                break
            await asyncio.sleep(0.5)
        stats["settled_after"] = round(time.monotonic() - started, 1)
        for name, report in reports.items():
            assert report["ok"], (name, report)
            assert report["in_flight"] == 0, (name, report)
    return stats


async def ledger_facts(world: World) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    conn = await asyncpg.connect(PG_DSN)
    try:
        for name in world.regions:
            await conn.execute(f'SET search_path TO "{world.schema}_{name}"')
            facts[name] = {
                "users_total": await conn.fetchval(
                    "SELECT coalesce(sum(balance), 0) FROM accounts WHERE owner_kind = 'user'"
                ),
                "all_total": await conn.fetchval("SELECT coalesce(sum(balance), 0) FROM accounts"),
                "min_available": await conn.fetchval(
                    "SELECT min(balance - held) FROM accounts WHERE NOT allow_negative"
                ),
                "held": await conn.fetchval("SELECT coalesce(sum(held), 0) FROM accounts"),
                "transfers": {
                    r["id"]: dict(r)
                    for r in await conn.fetch(
                        "SELECT id, status, payer_region, payee_region, amount FROM transfers "
                        "WHERE kind = 'transfer'"
                    )
                },
                "entries": [
                    (r["transfer_id"], r["kind"])
                    for r in await conn.fetch(
                        "SELECT transfer_id, kind FROM entries WHERE kind <> 'topup'"
                    )
                ],
                "inbound": {
                    r["transfer_id"]: r["outcome"]
                    for r in await conn.fetch("SELECT transfer_id, outcome FROM inbound_transfers")
                },
                "keys": {
                    (r["scope"], r["key"]): r["resource_id"]
                    for r in await conn.fetch(
                        "SELECT scope, key, resource_id FROM idempotency_keys"
                    )
                },
            }
    finally:
        await conn.close()
    return facts


def test_kill_dash_nine_mid_run_loses_and_duplicates_nothing(world: World) -> None:
    started = time.monotonic()
    stats = asyncio.run(chaos(world))
    facts = asyncio.run(ledger_facts(world))
    east, west = facts["east"], facts["west"]
    acknowledged = world.acknowledged

    # The run did what it says: many transfers, across regions too, through a crash.
    assert len(acknowledged) >= CLIENTS * MIN_PER_CLIENT, stats
    crossing = [t for t in acknowledged.values() if t["from_region"] != t["to_region"]]
    assert len(crossing) >= 16, stats
    assert stats["retries"] > 0, stats
    assert stats["replays"] > 0, stats
    assert stats["unanswered"] == 0, stats

    # Money: nothing created or destroyed, nothing negative, nothing left held.
    assert east["users_total"] + west["users_total"] == CLIENTS * START_BALANCE
    assert east["all_total"] + west["all_total"] == 0  # double entry across both ledgers
    assert east["min_available"] >= 0
    assert west["min_available"] >= 0
    assert east["held"] == west["held"] == 0

    # Every acknowledged transfer exists once, settled, under the key that made it; a
    # cross-region one has exactly one entry on each side, or none on either.
    journal = {name: facts[name]["entries"] for name in ("east", "west")}
    for key, ack in acknowledged.items():
        home, away = ack["from_region"], ack["to_region"]
        row = facts[home]["transfers"].get(ack["id"])
        assert row is not None, ack
        assert row["status"] in ("completed", "failed"), row
        assert facts[home]["keys"][(ack["payer"], key)] == ack["id"]
        mine = [k for t, k in journal[home] if t == ack["id"]]
        if home == away:
            assert row["status"] == "completed"
            assert mine == ["transfer"]
            continue
        theirs = [k for t, k in journal[away] if t == ack["id"]]
        if row["status"] == "completed":
            assert (mine, theirs) == (["xregion-out"], ["xregion-in"]), ack
            assert facts[away]["inbound"][ack["id"]] == "credited"
        else:
            assert (mine, theirs) == ([], []), ack
            assert facts[away]["inbound"].get(ack["id"]) in (None, "refused")
    # And no transfer exists that no key asked for.
    for name in ("east", "west"):
        made_here = {t for t, r in facts[name]["transfers"].items() if r["payer_region"] == name}
        asked = set(facts[name]["keys"].values())
        assert made_here <= asked

    # The audit command agrees (the same checks, from the command line, on PostgreSQL).
    audit = subprocess.run(
        [sys.executable, "-m", "sv_money", "audit"],
        cwd=ROOT,
        env=world.regions["east"].env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert json.loads(audit.stdout)["ok"]
    print(  # noqa: T201 - the numbers are the point of this test
        f"\nchaos: {len(acknowledged)} acknowledged ({len(crossing)} cross-region), {stats}, "
        f"{time.monotonic() - started:.1f} s"
    )
