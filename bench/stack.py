"""A whole local stack for the platform benchmarks: ``edgectl up`` on PostgreSQL and Redis.

The checked-in topology (deploy/local/topology.toml: a gateway, the global services and
two regions) with every port moved by ``EDGE_E2E_PORT_SHIFT`` (default 0, ``make up``'s
ports), a fresh PostgreSQL database dropped afterwards, the Redis of
``EDGE_TEST_REDIS_URL``. Also: accounts (registered, logged in, topped up through the
gateway as a client would) and each process's CPU time from ``/proc``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from edgelib.keyring import Keyring
from edgelib.signing import ServiceSigner

ROOT = Path(__file__).resolve().parents[1]
TOPOLOGY = ROOT / "deploy/local/topology.toml"
PG_URL = os.environ.get(
    "EDGE_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("EDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "correct-horse-battery-9"

#: The suite's own limits: every benchmark client is 127.0.0.1.
BENCH_ENV = {
    "SV_USER_REGISTER_ADDRESS_LIMIT": "0",
    "SV_USER_REGISTER_USERNAME_LIMIT": "0",
    "SV_USER_REGISTRATION_MIN_SECONDS": "0",
    "AUTH_JWT_LOGIN_ADDRESS_LIMIT": "0",
    "AUTH_JWT_REFRESH_ADDRESS_LIMIT": "0",
    "AUTH_JWT_LOCKOUT_ADDRESS_FAILURES": "100000",
    "GATEWAY_EXPOSE_INSTANCE": "true",
    "EDGE_LOG_LEVEL": "WARNING",
}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class Stack:
    var_dir: Path
    shift: int
    public: str

    def url(self, port: int) -> str:
        """A service instance by its checked-in port (7102 is auth-jwt)."""
        return f"http://127.0.0.1:{port + self.shift}"

    def pids(self) -> dict[str, int]:
        """Every running instance's pid, by instance name (var/run/*.pid)."""
        found = {}
        for path in (self.var_dir / "run").glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                found[path.stem] = int(path.read_text())
        return found

    def signer(self, service: str) -> ServiceSigner:
        return ServiceSigner(service, Keyring.load(self.var_dir / "keys" / f"{service}.json"))


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User plus system CPU seconds of each process (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def load_average() -> list[float]:
    """The machine's 1, 5 and 15-minute load: a shared machine's numbers need it beside them."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_shares(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, float]:
    """Each process's CPU over the interval, in % of one core, busiest first."""
    shares = {
        name: round(100 * (after[name] - before.get(name, after[name])) / seconds, 1)
        for name in after
    }
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


async def _admin_sql(statement: str) -> None:
    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def running_stack(extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """``edgectl up`` on PostgreSQL and Redis; stopped and its database dropped after."""
    shift = int(os.environ.get("EDGE_E2E_PORT_SHIFT", "0"))
    base = Path(tempfile.mkdtemp(prefix="edge-bench-stack-"))
    topology = base / "topology.toml"
    topology.write_text(
        re.sub(
            r"(port\s*=\s*)(\d+)",
            lambda m: f"{m.group(1)}{int(m.group(2)) + shift}",
            TOPOLOGY.read_text(),
        )
    )
    database = f"edge_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin_sql(f'CREATE DATABASE "{database}"'))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "OTEL_"))}
    env |= BENCH_ENV | (extra_env or {})
    env["EDGE_DATABASE_URL"] = PG_URL.rsplit("/", 1)[0] + "/" + database
    env["EDGE_REDIS_URL"] = REDIS_URL
    # Cached bytecode: without it each of the 13 processes compiles its imports again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(ROOT / ".venv" / "pycache")
    var_dir = base / "var"
    log_path = base / "edgectl.log"
    say(f"starting the stack (edgectl up, PostgreSQL database {database}, port shift {shift})")
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgectl", "--topology", str(topology),
             "--var-dir", str(var_dir), "up", "--ready-timeout", "900"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 920  # 13 processes on a busy 2-core machine
        while not re.search(r"^All \d+ processes ready", log_path.read_text(), re.M):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the stack did not come up:\n" + log_path.read_text()[-3000:])
            time.sleep(0.5)
        yield Stack(var_dir=var_dir, shift=shift, public=f"http://127.0.0.1:{7001 + shift}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


def subject(access_token: str) -> str:
    payload = access_token.split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sub"])


def login(client: httpx.Client, stack: Stack, username: str, password: str) -> dict[str, Any]:
    resp = client.post(
        stack.public + "/api/v1/auth/login",
        json={"username": username, "password": password, "client_type": "web"},
    )
    if resp.status_code != 200:
        raise SystemExit(f"login of {username} failed: {resp.status_code} {resp.text}")
    return dict(resp.json())


def admin_token(client: httpx.Client, stack: Stack) -> str:
    """The bootstrap admin's access token, its admin role granted and in effect."""
    password = (stack.var_dir / "admin-password").read_text().strip()
    token = login(client, stack, "admin", password)["access_token"]
    body = orjson.dumps({"user": subject(token), "role": "admin"})
    headers = {"content-type": "application/json"}
    headers |= stack.signer("auth-jwt").to("auth-rbac").sign("POST", "/internal/assignments", body)
    granted = client.post(stack.url(7103) + "/internal/assignments", content=body, headers=headers)
    if granted.status_code not in (200, 201):
        raise SystemExit(f"could not make the admin: {granted.text}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        probe = client.get(
            stack.public + "/api/v1/wallet/audit", headers={"authorization": f"Bearer {token}"}
        )
        if probe.status_code != 403:
            return str(token)
        time.sleep(0.1)
    raise SystemExit("the admin role did not take effect")


def make_accounts(
    client: httpx.Client, stack: Stack, per_region: int, admin: str, funds: int
) -> list[dict[str, Any]]:
    """``per_region`` users in east and west, each logged in and topped up with ``funds``."""
    accounts = []
    run = uuid.uuid4().hex[:6]
    for region in ("east", "west"):
        for n in range(per_region):
            username = f"b{run}{region[0]}{n}"
            created = client.post(
                stack.public + "/api/v1/users",
                json={"username": username, "password": PASSWORD, "region": region},
            )
            if created.status_code != 201:
                raise SystemExit(f"registration failed: {created.status_code} {created.text}")
            tokens = login(client, stack, username, PASSWORD)
            topup = client.post(
                stack.public + "/api/v1/wallet/topups",
                json={"username": username, "amount": funds, "currency": "USD"},
                headers={"authorization": f"Bearer {admin}", "idempotency-key": uuid.uuid4().hex},
            )
            if topup.status_code != 201:
                raise SystemExit(f"top-up failed: {topup.status_code} {topup.text}")
            accounts.append(
                {
                    "username": username,
                    "region": region,
                    "access_token": tokens["access_token"],
                    "refresh_token": tokens["refresh_token"],
                }
            )
    return accounts
