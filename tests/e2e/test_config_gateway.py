"""The gateway's route table served by sv-config, across real processes.

A gateway (``GATEWAY_ROUTES_SOURCE=sv-config:gateway-routes``), sv-config and one upstream
service run as processes. A route published through sv-config serves traffic without a
gateway restart, under load and without a failed request; a table the gateway cannot
use is refused by sv-config's schema or by the gateway itself, and the running table
stays; a gateway restarted while sv-config is down routes by its cached table.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_api.routing.schema import route_table_schema
from tests.sv_config.processes import (
    OPERATOR,
    Operator,
    Process,
    auth_rbac_process,
    base_env,
    grant,
    probe_process,
    sv_config_process,
    wait_for,
)
from tests.worker import free_port

# Setting up real processes on a busy 2-core machine can take well over the default.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

NS = "gateway-routes"
DRAFT = f"/api/v1/config/drafts/local/default/{NS}"
RELEASES = f"/api/v1/config/releases/local/default/{NS}"
STABLE = {
    "path": "/api/v1/probe/stable",
    "service": "probe",
    "methods": ["GET"],
    "access": "public",
}
NEW = {"prefix": "/api/v1/probe/new", "service": "probe", "access": "public"}
#: What a route table must look like, as the gateway publishes it for its topology:
#: sv-config refuses releases that do not (routes to reserved prefixes, to services the
#: gateway does not know, without access ...).
ROUTES_SCHEMA = route_table_schema(["sv-config", "probe"], ("/healthz", "/readyz", "/metrics"))


@dataclass
class Platform:
    gateway: Process
    config: Process
    probe: Process
    ops: Operator

    @property
    def public(self) -> str:
        return self.gateway.url

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.gateway.ready_port}"


def gateway_process(var: Path, config_port: int, probe_port: int) -> Process:
    public, admin = free_port(), free_port()
    topology = var / "topology.toml"
    topology.write_text(
        f'[gateway]\nhost = "127.0.0.1"\nport = {public}\nadmin_port = {admin}\n'
        '[[regions]]\nname = "east"\n'
        f'[[services]]\nname = "sv-config"\ninstances = [{{ port = {config_port} }}]\n'
        f'[[services]]\nname = "probe"\ninstances = [{{ port = {probe_port} }}]\n'
    )
    routes = var / "routes.toml"
    routes.write_text(
        '[[routes]]\npath = "/api/v1/probe/stable"\nservice = "probe"\n'
        'methods = ["GET"]\naccess = "public"\n'
    )
    env = base_env(var) | {
        "GATEWAY_PORT": str(public),
        "GATEWAY_ADMIN_PORT": str(admin),
        "GATEWAY_INSTANCE_ID": "gateway-cfg",
        "GATEWAY_TOPOLOGY": str(topology),
        "GATEWAY_ROUTES": str(routes),
        "GATEWAY_ROUTES_SOURCE": f"sv-config:{NS}",
        "GATEWAY_HEALTH_INTERVAL": "0.5",
    }
    return Process(
        "gateway",
        [sys.executable, "-m", "gateway_api"],
        env,
        public,
        var / "gateway.log",
        ready_port=admin,
    )


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    var = tmp_path_factory.mktemp("config-gateway")
    rbac = auth_rbac_process(var)
    config = sv_config_process(var, rbac=rbac)
    started: list[Process] = []
    ops: Operator | None = None
    try:
        rbac.start()
        started.append(rbac)
        grant(rbac, OPERATOR.user_id)
        config.start()
        started.append(config)
        ops = Operator(config.url)
        ops.namespace(NS, app="gateway-api", schema=ROUTES_SCHEMA)
        probe = probe_process(var, "probe-1", [config.url])
        probe.start()
        started.append(probe)
        gateway = gateway_process(var, config.port, probe.port)
        gateway.start()
        started.append(gateway)
        yield Platform(gateway, config, probe, ops)
    finally:
        if ops is not None:
            ops.close()
        for proc in reversed(started):
            proc.stop()


class Load:
    """GETs one route in a loop from a thread; counts every answer that is not a 200."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                try:
                    resp = client.get(self.url)
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))
                    continue
                if resp.status_code == 200:
                    self.ok += 1
                else:
                    self.failed.append(f"{resp.status_code} {resp.text[:200]}")

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def status(url: str) -> int:
    return httpx.get(url, timeout=5).status_code


def routes_source(platform: Platform) -> str:
    cluster: dict[str, Any] = httpx.get(platform.admin + "/cluster", timeout=5).json()
    return str(cluster["routes"]["source"])


def set_routes(ops: Operator, routes: list[dict[str, Any]]) -> None:
    ops.ok("PUT", DRAFT + "/items/routes", {"value": routes})


def test_a_route_published_through_sv_config_serves_without_a_gateway_restart(
    platform: Platform,
) -> None:
    ops, gw = platform.ops, platform.public
    pid = platform.gateway.pid
    assert status(gw + "/api/v1/probe/stable") == 200
    assert status(gw + "/api/v1/probe/new/x") == 404

    set_routes(ops, [STABLE, NEW])
    with Load(gw + "/api/v1/probe/stable") as load:
        time.sleep(0.3)
        started = time.monotonic()
        release = ops.publish(NS, "route the new API")["number"]
        served_in = wait_for(lambda: status(gw + "/api/v1/probe/new/x") == 200, timeout=3.0)
        elapsed = time.monotonic() - started
        time.sleep(0.3)
    sys.stderr.write(
        f"\n[config-gateway] publish -> new route serving: {elapsed * 1000:.0f} ms; "
        f"{load.ok} requests on the old route during the swap, {len(load.failed)} failed\n"
    )
    assert elapsed < 1.0, served_in
    assert load.failed == []
    assert load.ok > 0
    assert platform.gateway.pid == pid
    assert routes_source(platform) == f"sv-config:{NS}@default#{release}"
    body = httpx.get(gw + "/api/v1/probe/new/x", timeout=5).json()
    assert body == {"probe": "probe-1", "path": "/api/v1/probe/new/x"}


def test_a_table_the_gateway_cannot_use_is_refused_and_the_running_one_stays(
    platform: Platform,
) -> None:
    ops, gw = platform.ops, platform.public
    source = routes_source(platform)

    # sv-config's schema refuses a route without access: nothing is released.
    set_routes(ops, [STABLE, {"prefix": "/api/v1/probe/open", "service": "probe"}])
    refused = ops.request("POST", RELEASES, {"comment": "no access"})
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["violations"][0]["pointer"] == "/routes/1"

    # Least privilege: a route to /internal, or to a service outside the topology, is
    # refused by sv-config with 422 before anything is released.
    for route, pointer in (
        ({"prefix": "/internal", "service": "probe", "access": "public"}, "/routes/1/prefix"),
        ({"prefix": "/api/v1/x", "service": "auth-rbac", "access": "public"}, "/routes/1/service"),
    ):
        set_routes(ops, [STABLE, route])
        refused = ops.request("POST", RELEASES, {"comment": "least privilege"})
        assert refused.status_code == 422, refused.text
        assert refused.json()["violations"][0]["pointer"] == pointer
    assert routes_source(platform) == source

    # A table the schema accepts but the gateway refuses (a route declared twice).
    set_routes(ops, [STABLE, NEW, NEW])
    bad = ops.publish(NS, "duplicate")["number"]
    time.sleep(1.0)
    assert routes_source(platform) == source
    assert status(gw + "/api/v1/probe/new/x") == 200
    metrics = httpx.get(platform.admin + "/metrics", timeout=5).text
    assert f'edge_config_updates_total{{namespace="{NS}",outcome="rejected"}} 1.0' in metrics

    # Rolling back to the good release brings sv-config and the gateway together again.
    good = int(source.rsplit("#", 1)[1])
    restored = ops.ok("POST", RELEASES + "/rollback", {"to": good}, 201)["number"]
    assert restored == bad + 1
    wait_for(lambda: routes_source(platform).endswith(f"#{restored}"), timeout=1.0)


def test_a_gateway_restarted_while_sv_config_is_down_routes_by_its_cached_table(
    platform: Platform,
) -> None:
    gw = platform.public
    assert status(gw + "/api/v1/probe/new/x") == 200
    source = routes_source(platform)
    platform.config.stop()
    platform.gateway.stop()
    platform.gateway.start()
    assert routes_source(platform) == source
    assert status(gw + "/api/v1/probe/new/x") == 200

    platform.config.start()
    set_routes(platform.ops, [STABLE])
    platform.ops.publish(NS, "retire the new API")
    wait_for(lambda: status(gw + "/api/v1/probe/new/x") == 404, timeout=5.0)
    assert status(gw + "/api/v1/probe/stable") == 200
