"""A real local stack (``edgectl up``) on shifted ports, once per backend flavour."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import asyncpg
import httpx
import pytest

from edgelib.keyring import Keyring
from edgelib.signing import ServiceSigner
from tests import scheduling
from tests.conftest import PG_URL, REDIS_URL
from tests.e2e.otlp import OtlpReceiver
from tests.e2e.servers import OwnPostgres, OwnRedis
from tests.worker import PORT_SHIFT

ROOT = Path(__file__).parents[2]
TOPOLOGY = ROOT / "deploy/local/topology.toml"


def instance_id(service: str, port: int, region: str | None = None) -> str:
    """The id the stack gives the instance that the checked-in topology puts on ``port``."""
    return f"{service}-{region}-{port + PORT_SHIFT}" if region else f"{service}-{port + PORT_SHIFT}"


#: Seconds a stack gets to come up; EDGE_E2E_READY_TIMEOUT raises it on a machine that
#: is busy with other work.
READY_TIMEOUT = float(os.environ.get("EDGE_E2E_READY_TIMEOUT", "90"))

#: Every e2e client is 127.0.0.1: the per-address request limits would let a whole
#: suite register and log in only a few dozen times. The limits' own tests
#: (test_account_abuse.py) start a stack with small ones.
SUITE_LIMITS = {
    "SV_USER_REGISTER_ADDRESS_LIMIT": "0",
    # Registrations are not held back to hide a taken name; test_account_abuse.py's
    # stack keeps that floor (its default) and measures it.
    "SV_USER_REGISTRATION_MIN_SECONDS": "0",
    "AUTH_JWT_LOGIN_ADDRESS_LIMIT": "0",
    "AUTH_JWT_REFRESH_ADDRESS_LIMIT": "0",
    # Failed logins from 127.0.0.1 add up in Redis across runs (a success no longer
    # clears an address's count).
    "AUTH_JWT_LOCKOUT_ADDRESS_FAILURES": "100000",
}


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

    def signer(self, service: str) -> ServiceSigner:
        """``service``'s signer, with the keyring edgectl gave it (var/keys/<service>.json)."""
        return ServiceSigner(service, Keyring.load(self.var_dir / "keys" / f"{service}.json"))

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


@dataclass
class _Running:
    stack: Stack
    proc: subprocess.Popen[bytes]
    log: IO[str]
    database: str | None
    servers: tuple[OwnRedis, OwnPostgres] | None = None


@dataclass
class OwnServersStack:
    """A stack on a PostgreSQL and a Redis of its own, which its tests may stop and start."""

    stack: Stack
    redis: OwnRedis
    postgres: OwnPostgres


class Stacks:
    """This session's stacks: each started when a test first needs it, and stopped after
    the last test in a row that does (not at the end of the session: an idle stack's
    13 processes keep polling, and on PostgreSQL keep their connections)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self._running: dict[str, _Running] = {}

    def get(self, flavour: str, env: dict[str, str] | None = None) -> Stack:
        """The stack of ``flavour``, started with ``env`` (``EDGE_*`` settings) if not up."""
        if flavour not in self._running:
            self._running[flavour] = self._start(flavour, env or {})
        return self._running[flavour].stack

    def _start(self, flavour: str, extra_env: dict[str, str]) -> _Running:
        base = self.tmp_path_factory.mktemp(f"stack-{flavour}")
        topology = base / "topology.toml"
        ports = shifted_topology(topology)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
        env.update(SUITE_LIMITS)
        # The tests read which instance answered; the gateway hides it unless asked.
        env["GATEWAY_EXPOSE_INSTANCE"] = "true"
        database = None
        if flavour == "postgres-redis":
            database = f"edge_e2e_{uuid.uuid4().hex[:8]}"
            asyncio.run(_create_database(database))
            env["EDGE_DATABASE_URL"] = PG_URL.rsplit("/", 1)[0] + "/" + database
            env["EDGE_REDIS_URL"] = REDIS_URL
        env.update(extra_env)
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
        running = _Running(
            Stack(
                flavour=flavour,
                var_dir=var_dir,
                public=f"http://127.0.0.1:{ports['public']}",
                admin=f"http://127.0.0.1:{ports['admin']}",
                ports=ports,
                ready_seconds=0.0,
                env=env,
            ),
            proc,
            log,
            database,
        )
        ready = False
        while proc.poll() is None and time.monotonic() - started < READY_TIMEOUT + 15:
            if re.search(r"^All \d+ processes ready", log_path.read_text(), re.M):
                ready = True
                break
            time.sleep(0.2)
        running.stack.ready_seconds = time.monotonic() - started
        if not ready:
            self._stop(running)
            pytest.fail(_not_ready_report(log_path.read_text(), var_dir / "log"))
        return running

    def with_own_servers(self, flavour: str) -> OwnServersStack:
        """The stack of ``flavour`` on a PostgreSQL and a Redis started for it alone
        (stopped and removed with it): what its tests do to them reaches no other test."""
        if flavour not in self._running:
            redis = OwnRedis(self.tmp_path_factory.mktemp(f"{flavour}-servers"))
            postgres = OwnPostgres()
            try:
                redis.start()
                postgres.init()
                postgres.start()
                running = self._start(
                    flavour, {"EDGE_DATABASE_URL": postgres.url, "EDGE_REDIS_URL": redis.url}
                )
            except BaseException:
                try:
                    postgres.remove()
                finally:
                    redis.stop()
                raise
            running.servers = (redis, postgres)
            self._running[flavour] = running
        running = self._running[flavour]
        assert running.servers is not None, f"{flavour} was started without servers of its own"
        return OwnServersStack(running.stack, *running.servers)

    def stop(self, flavour: str) -> None:
        running = self._running.pop(flavour, None)
        if running is not None:
            self._stop(running)

    def stop_all(self) -> None:
        for flavour in list(self._running):
            self.stop(flavour)

    @staticmethod
    def _stop(running: _Running) -> None:
        running.proc.send_signal(signal.SIGTERM)
        try:
            running.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            running.proc.kill()
            running.proc.wait()
        running.log.close()
        if running.database:
            asyncio.run(_drop_database(running.database))
        if running.servers is not None:
            redis, postgres = running.servers
            try:
                postgres.remove()
            finally:
                redis.stop()


def _not_ready_report(edgectl_log: str, log_dir: Path) -> str:
    """edgectl's output, and the errors of every instance it restarted or waited for."""
    report = ["stack did not come up:", edgectl_log[-4000:]]
    named = set(re.findall(r"edgectl: (\S+) exited with", edgectl_log))
    waited = re.search(r"not ready after \S+: (.+?) \(see", edgectl_log)
    if waited:
        named.update(name.strip() for name in waited.group(1).split(","))
    for name in sorted(named):
        path = log_dir / f"{name}.log"
        if path.exists():
            lines = path.read_text().splitlines()
            # A startup failure is an error line holding the whole traceback: its end
            # names the exception.
            errors = [f"...{line[-800:]}" for line in lines if '"level":"error"' in line]
            report += [f"--- {path}: last errors, then last lines", *errors[-4:], *lines[-3:]]
    return "\n".join(report)


_STACKS = pytest.StashKey[Stacks]()


@pytest.fixture(scope="session")
def stacks(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stacks]:
    request.config.stash[_STACKS] = stacks = Stacks(tmp_path_factory)
    try:
        yield stacks
    finally:
        stacks.stop_all()
        del request.config.stash[_STACKS]


@pytest.fixture(scope="session", params=["sqlite-memory", "postgres-redis"])
def stack_flavour(request: pytest.FixtureRequest) -> str:
    """Session-scoped, so pytest runs the tests of one flavour one after another."""
    return str(request.param)


@pytest.fixture
def stack(stack_flavour: str, stacks: Stacks) -> Stack:
    """A real local stack (``edgectl up``) on this worker's shifted ports."""
    return stacks.get(stack_flavour)


def _flavour(item: pytest.Item | None) -> str | None:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("stack_flavour")


#: Stacks of their own that the tests of more than one file run on, by the fixture that
#: gives them. Such tests are one work unit (tests/scheduling.py): one worker runs them in
#: a row, and the stack stops after the last of them.
SHARED_STACKS = {"observed_stack": "observed", "own_servers_stack": "own-servers"}
assert tuple(SHARED_STACKS) == scheduling.SHARED_STACK_FIXTURES


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the last test of a run of tests on one stack (its own fixtures torn down by
    now), stop that stack; a later test that wants it again starts it again."""
    flavour = _flavour(item)
    stacks = item.config.stash.get(_STACKS, None)
    if stacks is None:
        return
    if flavour is not None and _flavour(nextitem) != flavour:
        stacks.stop(flavour)
    following = () if nextitem is None else nextitem.fixturenames
    for fixture, shared in SHARED_STACKS.items():
        if fixture in item.fixturenames and fixture not in following:
            stacks.stop(shared)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on one shared stack in a row (where the first of them is), so that it
    starts once in a run without xdist too; the fuzz tests last on theirs: they leave it
    full of generated roles, regions and settings, which the outage tests should not meet."""
    first: dict[str, int] = {}
    keys: dict[str, tuple[int, bool, int]] = {}
    for index, item in enumerate(items):
        shared = next((f for f in SHARED_STACKS if f in item.fixturenames), None)
        at = index if shared is None else first.setdefault(shared, index)
        keys[item.nodeid] = (at, item.nodeid.startswith("tests/e2e/test_fuzz.py"), index)
    items.sort(key=lambda item: keys[item.nodeid])


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="module")
def observed_stack(stacks: Stacks, otlp_receiver: OtlpReceiver) -> Stack:
    """The stack as ``make observe`` starts it (Prometheus scraping it every 2 s, the
    dashboards' and alerts' files), exporting every span to ``otlp_receiver``: shared by
    test_observability.py and test_tracing.py."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is missing: tools/ci/ensure-services.sh installs it")
    env = {
        "EDGE_OBSERVE": "1",
        "EDGE_OBSERVE_PORT": str(9090 + PORT_SHIFT),
        "EDGE_OBSERVE_SCRAPE_INTERVAL": "2s",
        # The wallet's audit gauge comes from the periodic audit.
        "SV_MONEY_AUDIT_INTERVAL": "10",
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url,
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    return stacks.get("observed", env)


@pytest.fixture(scope="module")
def own_servers_stack(stacks: Stacks) -> OwnServersStack:
    """A stack on a PostgreSQL and a Redis of its own: shared by test_outages.py (which
    stops them) and test_fuzz.py (whose generated data reaches no other test)."""
    return stacks.with_own_servers("own-servers")


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as c:
        yield c
