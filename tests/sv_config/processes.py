"""Real processes for the config tests: sv-config, probe services and a gateway.

Ports come from this pytest process's own block (tests/worker.py), so these processes
never meet the e2e stacks or another worker's servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from edgelib.identity import Identity
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from tests.worker import free_port

ROOT = Path(__file__).parents[2]
GATEWAY = ServiceSigner("gateway-api", DEV_SERVICE_SECRET)
#: auth-jwt's key: it may assign ``admin`` (the bootstrap admin) at auth-rbac.
AUTH_JWT = ServiceSigner("auth-jwt", DEV_SERVICE_SECRET).to("auth-rbac")
OPERATOR = Identity("u-ops", "ops", "east", "s-ops", "web")


def base_env(var_dir: Path) -> dict[str, str]:
    # The caller's EDGE_* values (a PostgreSQL URL, a log shipping URL) are not ours.
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    env.update({"EDGE_VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1", "EDGE_LOG_LEVEL": "INFO"})
    return env


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    ready_path: str = "/readyz"
    ready_port: int | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self, timeout: float = 90.0) -> float:
        """Start and wait until ready; the seconds it took."""
        started = time.monotonic()
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        ready = f"http://127.0.0.1:{self.ready_port or self.port}{self.ready_path}"
        while time.monotonic() - started < timeout:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                if httpx.get(ready, timeout=0.5).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text()[-chars:]
        except OSError:
            return ""


def sv_config_process(
    var_dir: Path,
    *,
    rbac: Process,
    name: str = "sv-config",
    database_url: str = "",
    **env: str,
) -> Process:
    port = free_port()
    values = base_env(var_dir) | {
        "SV_CONFIG_PORT": str(port),
        "SV_CONFIG_INSTANCE_ID": f"{name}-{port}",
        "SV_CONFIG_WATCH_FALLBACK_INTERVAL": "1.0",
        # The probes follow their configuration as the service "probe".
        "SV_CONFIG_WATCH_CALLERS": "probe",
        "EDGE_AUTH_RBAC_URL": rbac.url,
    }
    if database_url:
        values["SV_CONFIG_DATABASE_URL"] = database_url
    values.update(env)
    return Process(
        name,
        [sys.executable, "-m", "sv_config"],
        values,
        port,
        var_dir / f"{name}.log",
    )


def auth_rbac_process(var_dir: Path, *, name: str = "auth-rbac") -> Process:
    """auth-rbac on SQLite: the policy sv-config (and every service) asks about its own
    admin endpoints (edgelib.permissions)."""
    port = free_port()
    values = base_env(var_dir) | {
        "AUTH_RBAC_PORT": str(port),
        "AUTH_RBAC_INSTANCE_ID": f"{name}-{port}",
    }
    return Process(name, [sys.executable, "-m", "auth_rbac"], values, port, var_dir / f"{name}.log")


def grant(rbac: Process, user_id: str, role: str = "admin") -> None:
    """Give ``user_id`` a role as auth-jwt does for the bootstrap admin."""
    body = orjson.dumps({"user": user_id, "role": role, "dom": "default"})
    path = "/internal/assignments"
    headers = AUTH_JWT.sign("POST", path, body) | {"content-type": "application/json"}
    resp = httpx.post(rbac.url + path, content=body, headers=headers, timeout=10)
    assert resp.status_code in (200, 201), resp.text


def probe_process(
    var_dir: Path,
    name: str,
    config_urls: list[str],
    *,
    region: str = "east",
    labels: dict[str, str] | None = None,
    namespaces: str = "flags",
) -> Process:
    port = free_port()
    env = base_env(var_dir) | {
        "PROBE_PORT": str(port),
        "PROBE_INSTANCE_ID": name,
        "PROBE_REGION": region,
        "PROBE_CONFIG_URL": ",".join(config_urls),
        "PROBE_CONFIG_NAMESPACES": namespaces,
        "PROBE_CONFIG_LABELS": orjson.dumps(labels or {}).decode(),
    }
    return Process(
        name,
        [sys.executable, "-m", "tests.sv_config.probe"],
        env,
        port,
        var_dir / f"{name}.log",
    )


class Operator:
    """Calls sv-config's public API as the gateway forwards an operator's requests."""

    def __init__(self, base: str, identity: Identity = OPERATOR) -> None:
        self.base = base
        self.identity = identity
        self.http = httpx.Client(timeout=10)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        content = orjson.dumps(body) if body is not None else None
        headers = GATEWAY.to("sv-config").sign(
            method, path, content or b"", identity=self.identity.encode()
        )
        if content is not None:
            headers["content-type"] = "application/json"
        return self.http.request(method, self.base + path, content=content, headers=headers)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        resp = self.request(method, path, body)
        assert resp.status_code == status, resp.text
        return resp.json() if resp.content else None

    def namespace(self, name: str, **fields: Any) -> None:
        body = {"name": name, "environment": "local", **fields}
        self.ok("POST", "/api/v1/config/namespaces", body, 201)

    def edit(self, name: str, values: dict[str, Any]) -> None:
        body = {"set": {k: {"value": v} for k, v in values.items()}}
        self.ok("PATCH", f"/api/v1/config/drafts/local/default/{name}", body)

    def publish(self, name: str, comment: str = "") -> dict[str, Any]:
        path = f"/api/v1/config/releases/local/default/{name}"
        result: dict[str, Any] = self.ok("POST", path, {"comment": comment}, 201)
        return result


def probe_state(probe: Process) -> dict[str, Any]:
    resp = httpx.get(probe.url + "/probe/config", timeout=5)
    assert resp.status_code == 200, resp.text
    state: dict[str, Any] = resp.json()
    return state


def wait_for(predicate: Any, timeout: float, interval: float = 0.02) -> float:
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met in {timeout}s")
        time.sleep(interval)
