"""Redis, then PostgreSQL, stopped for 20 s under load, on a stack of their own.

A few clients keep reading wallets, paying each other across regions and shipping log
records while the server is away. The platform must answer every request (2xx, or 503
problem+json; never a 500, never a hang past the route timeout), serve normally again
within 5 s of the server's return without any process restarting, and keep every write
it acknowledged: each acknowledged transfer is in the ledger, the wallet audit of both
regions is clean, and each acknowledged log record is stored exactly once.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import orjson
import pytest

from edgelib.signing import PeerSigner
from tests.e2e import accounts
from tests.e2e.conftest import PORT_SHIFT, OwnServersStack, Stack, instance_id
from tests.e2e.servers import OwnPostgres, OwnRedis

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

OUTAGE_SECONDS = 20.0
RECOVERY_LIMIT = 5.0
#: The routes' read timeout (gateway_api/routes.toml defaults): no answer may take longer.
ROUTE_TIMEOUT = 30.0
CLIENTS = 3
PROBLEM = "application/problem+json"
SV_LOG = f"http://127.0.0.1:{7105 + PORT_SHIFT}"


@dataclass
class Attempt:
    kind: str
    started: float
    ended: float
    status: int  # 0: no answer (connection error or client timeout)
    media_type: str
    detail: str = ""


@dataclass
class Load:
    """Attempts of all clients, and what the platform acknowledged."""

    attempts: list[Attempt] = field(default_factory=list)
    transfers: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    shipped: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def record(self, kind: str, started: float, resp: httpx.Response | Exception) -> None:
        ended = time.monotonic()
        if isinstance(resp, Exception):
            attempt = Attempt(kind, started, ended, 0, "", f"{type(resp).__name__}: {resp}")
        else:
            media_type = resp.headers.get("content-type", "").split(";")[0]
            detail = resp.text[:200] if resp.status_code >= 400 else ""
            attempt = Attempt(kind, started, ended, resp.status_code, media_type, detail)
        with self.lock:
            self.attempts.append(attempt)


@dataclass
class World:
    stack: Stack
    redis: OwnRedis
    postgres: OwnPostgres
    admin: dict[str, str]
    users: list[tuple[str, dict[str, str]]]


@pytest.fixture(scope="module")
def world(own_servers_stack: OwnServersStack) -> World:
    stack = own_servers_stack.stack
    admin = accounts.admin(stack)
    users = [accounts.register(stack, region, "out") for region in ("east", "west") * 2]
    for username, _ in users:
        made = httpx.post(
            stack.public + "/api/v1/wallet/topups",
            json={"username": username, "amount": 1_000_000, "currency": "USD"},
            headers=admin | {"idempotency-key": f"seed-{username}"},
            timeout=15,
        )
        assert made.status_code == 201, made.text
    return World(stack, own_servers_stack.redis, own_servers_stack.postgres, admin, users)


def pids(stack: Stack) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in sorted((stack.var_dir / "run").glob("*.pid"))}


def _pay_and_read(world: World, load: Load, n: int) -> None:
    rng = random.Random(n)
    stack = world.stack
    with httpx.Client(timeout=ROUTE_TIMEOUT + 30) as client:
        while not load.stop.is_set():
            payer_name, payer = world.users[n % len(world.users)]
            started = time.monotonic()
            try:
                resp: httpx.Response | Exception = client.get(
                    stack.public + "/api/v1/wallet", headers=payer
                )
            except httpx.HTTPError as exc:
                resp = exc
            load.record("read", started, resp)
            payee = rng.choice([u for u, _ in world.users if u != payer_name])
            key = uuid.uuid4().hex
            started = time.monotonic()
            try:
                resp = client.post(
                    stack.public + "/api/v1/wallet/transfers",
                    json={"to_username": payee, "amount": 1, "currency": "USD"},
                    headers=payer | {"idempotency-key": key},
                )
            except httpx.HTTPError as exc:
                resp = exc
            load.record("transfer", started, resp)
            if isinstance(resp, httpx.Response) and resp.status_code == 201:
                with load.lock:
                    load.transfers.append((resp.json()["id"], payer))
            load.stop.wait(0.05)


def _ship_logs(service: str, load: Load, signer: PeerSigner) -> None:
    """Batches of records sent to sv-log's intake as a service does (signed, keyed by
    the batch's digest), each retried until acknowledged."""
    n = 0
    with httpx.Client(timeout=ROUTE_TIMEOUT + 30) as client:
        while not load.stop.is_set():
            messages = [f"{service} record {n + i}" for i in range(5)]
            n += len(messages)
            ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            records = [
                {"ts": ts, "service": service, "level": "info", "message": m} for m in messages
            ]
            body = orjson.dumps({"records": records})
            headers = {
                "content-type": "application/json",
                "idempotency-key": hashlib.sha256(body).hexdigest()[:40],
            }
            while True:
                started = time.monotonic()
                signed = headers | signer.sign("POST", "/internal/logs", body)
                try:
                    resp: httpx.Response | Exception = client.post(
                        SV_LOG + "/internal/logs", content=body, headers=signed
                    )
                except httpx.HTTPError as exc:
                    resp = exc
                load.record("ship", started, resp)
                if isinstance(resp, httpx.Response) and resp.status_code == 202:
                    with load.lock:
                        load.shipped.extend(messages)
                    break
                if isinstance(resp, httpx.Response) and resp.status_code < 500:
                    raise AssertionError(f"sv-log refused a batch: {resp.text}")
                time.sleep(0.2)
            load.stop.wait(0.1)


def run_outage(world: World, stop: Callable[[], None], start: Callable[[], None]) -> dict:
    """Load, the outage, the return; the figures and every attempt."""
    service = f"outage-{uuid.uuid4().hex[:8]}"
    load = Load()
    threads = [
        threading.Thread(target=_pay_and_read, args=(world, load, n), daemon=True)
        for n in range(CLIENTS)
    ]
    log_signer = world.stack.signer("sv-money").to("sv-log")
    threads.append(
        threading.Thread(target=_ship_logs, args=(service, load, log_signer), daemon=True)
    )
    before = pids(world.stack)
    for thread in threads:
        thread.start()
    time.sleep(3)
    down = time.monotonic()
    stop()
    time.sleep(OUTAGE_SECONDS)
    start()
    back = time.monotonic()
    # Keep the load on until every kind has served normally for a while after the return.
    deadline = back + RECOVERY_LIMIT + 10
    while time.monotonic() < deadline:
        time.sleep(0.5)
        with load.lock:
            late_failures = [
                a for a in load.attempts if a.started > back and not 200 <= a.status < 300
            ]
            last_failure = max((a.ended for a in late_failures), default=back)
        if time.monotonic() - last_failure > 4:
            break
    load.stop.set()
    for thread in threads:
        thread.join(timeout=ROUTE_TIMEOUT + 35)
    assert pids(world.stack) == before, "a process restarted"
    return {"service": service, "load": load, "down": down, "back": back}


def check(world: World, name: str, run: dict) -> None:
    load: Load = run["load"]
    down, back = run["down"], run["back"]
    attempts = load.attempts
    during = [a for a in attempts if a.ended > down and a.started < back]
    bad = [a for a in attempts if not (200 <= a.status < 300 or a.status == 503)]
    not_problem = [a for a in attempts if a.status >= 400 and a.media_type != PROBLEM]
    unavailable = Counter(a.kind for a in attempts if a.status == 503)
    after = [a for a in attempts if a.started >= back and not 200 <= a.status < 300]
    recovery = max((a.ended for a in after), default=back) - back
    longest = max((a.ended - a.started for a in attempts), default=0.0)
    longest_during = max((a.ended - a.started for a in during), default=0.0)

    # Every acknowledged transfer is in the ledger, and both regions' books balance.
    missing = []
    with httpx.Client(timeout=15) as client:
        for transfer_id, payer in load.transfers:
            got = client.get(
                world.stack.public + f"/api/v1/wallet/transfers/{transfer_id}", headers=payer
            )
            if got.status_code != 200:
                missing.append((transfer_id, got.status_code, got.text[:200]))
        audits = {
            region: client.get(
                world.stack.public + "/api/v1/wallet/audit",
                params={"region": region},
                headers=world.admin,
            )
            for region in ("east", "west")
        }
        stored = _stored_messages(client, world, run["service"])
    counts = Counter(stored)
    twice = sorted(m for m, c in counts.items() if c > 1)
    lost = sorted(set(load.shipped) - set(counts))

    figures = {
        "attempts": len(attempts),
        "during_outage": len(during),
        "503s": dict(unavailable),
        "statuses": dict(Counter(a.status for a in attempts)),
        "longest_response_s": round(longest, 3),
        "longest_during_outage_s": round(longest_during, 3),
        "recovery_after_return_s": round(recovery, 3),
        "acknowledged_transfers_checked": len(load.transfers),
        "acknowledged_log_records_checked": len(load.shipped),
    }
    print(f"\n{name} outage of {OUTAGE_SECONDS:.0f} s under load: {figures}")  # noqa: T201 - the measured figures are the point
    assert not bad, f"answers other than 2xx or 503: {_sample(bad)}"
    assert not not_problem, f"errors not problem+json: {_sample(not_problem)}"
    assert longest < ROUTE_TIMEOUT, f"an answer took {longest:.1f} s"
    assert recovery <= RECOVERY_LIMIT, f"failures until {recovery:.1f} s after the return"
    assert not missing, f"acknowledged transfers not in the ledger: {missing[:5]}"
    for region, audit in audits.items():
        assert audit.status_code == 200, audit.text
        assert audit.json()["ok"], (region, audit.json())
    assert not twice, f"log records stored twice: {twice[:5]}"
    assert not lost, (
        f"acknowledged log records lost: {lost[:5]} ({len(lost)} in all); "
        f"in the database: {_in_database(world, lost[:5])}; sv-log said: "
        + "\n".join(world.stack.log_lines(instance_id("sv-log", 7105))[-40:])
    )
    assert load.transfers, "no transfer was acknowledged at all"
    assert load.shipped, "no log batch was acknowledged at all"


def _stored_messages(client: httpx.Client, world: World, service: str) -> list[str]:
    messages: list[str] = []
    cursor: str | None = None
    while True:
        params = {"service": service, "limit": 500} | ({"cursor": cursor} if cursor else {})
        page = client.get(
            world.stack.public + "/api/v1/logs/records", params=params, headers=world.admin
        )
        assert page.status_code == 200, page.text
        doc = page.json()
        messages += [item["message"] for item in doc["items"]]
        cursor = doc.get("next_cursor")
        if not cursor:
            return messages


def _in_database(world: World, messages: list[str]) -> object:
    """Where the lost records are, read straight from PostgreSQL (not through sv-log)."""
    import asyncio

    import asyncpg

    async def look() -> object:
        conn = await asyncpg.connect(world.postgres.url.replace("+asyncpg", ""))
        try:
            rows = await conn.fetch(
                "SELECT table_schema FROM information_schema.tables"
                " WHERE table_name = 'log_records'"
            )
            found = {}
            for row in rows:
                schema = row["table_schema"]
                found[schema] = await conn.fetchval(
                    f'SELECT count(*) FROM "{schema}".log_records WHERE message = ANY($1)',
                    messages,
                )
            return found
        finally:
            await conn.close()

    try:
        return asyncio.run(look())
    except Exception as exc:  # a diagnosis, never the failure itself
        return f"could not look: {exc!r}"


def _sample(attempts: list[Attempt]) -> list[tuple[str, int, str]]:
    return [(a.kind, a.status, a.detail[:160]) for a in attempts[:5]]


def test_redis_stopped_for_20_s_under_load_answers_503_or_serves_and_loses_nothing(
    world: World,
) -> None:
    run = run_outage(world, world.redis.stop, world.redis.start)
    check(world, "Redis", run)


def test_postgres_stopped_for_20_s_under_load_answers_503_recovers_and_loses_nothing(
    world: World,
) -> None:
    run = run_outage(world, world.postgres.stop, world.postgres.start)
    check(world, "PostgreSQL", run)
