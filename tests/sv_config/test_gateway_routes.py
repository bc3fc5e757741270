"""The gateway side of routes served by sv-config: which releases are installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgelib.configclient import ConfigRejected, ConfigSnapshot
from gateway_api.config import Settings
from gateway_api.gateway import Gateway
from gateway_api.routing.sv_config import ConfigRoutes, RouteSourceError, parse_source

ROUTE = {"prefix": "/api/v1/echo", "service": "echo", "access": "public"}


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    topology = tmp_path / "topology.toml"
    topology.write_text(
        '[[regions]]\nname = "east"\n[[services]]\nname = "echo"\ninstances = [{ port = 28001 }]\n'
    )
    routes = tmp_path / "routes.toml"
    routes.write_text('[[routes]]\npath = "/file"\nservice = "echo"\naccess = "public"\n')
    return Gateway(
        Settings(
            topology=topology,
            routes=routes,
            var_dir=tmp_path,
            routes_source="sv-config:gateway-routes",
        )
    )


def snapshot(release: int, values: dict[str, Any]) -> ConfigSnapshot:
    return ConfigSnapshot("gateway-routes", "local", "default", release, release + 100, values)


def test_a_valid_release_replaces_the_table(gateway: Gateway) -> None:
    routes = ConfigRoutes(gateway, "sv-config:gateway-routes")
    routes.apply(snapshot(3, {"routes": [ROUTE], "defaults": {"retries": 0}}))
    assert gateway.routing.table.source == "sv-config:gateway-routes@default#3"
    route = gateway.routing.table.match("GET", "/api/v1/echo/x")
    assert route is not None
    assert route.retries == 0
    assert gateway.routing.table.match("GET", "/file") is None


@pytest.mark.parametrize(
    "values",
    [
        {"routes": []},
        {"routes": [{"prefix": "/a", "service": "echo"}]},
        {"routes": ["not a route"]},
        {"routes": [ROUTE, ROUTE]},
        {"routes": [{**ROUTE, "methods": "GET"}]},
        {"routes": [{**ROUTE, "methods": [1]}]},
        {"routes": [ROUTE], "defaults": []},
        {"routes": [{**ROUTE, "retries": "many"}]},
        # Least privilege: nothing reserved, nothing outside the topology.
        {"routes": [{**ROUTE, "prefix": "/internal"}]},
        {"routes": [{**ROUTE, "prefix": "/internal/assignments"}]},
        {"routes": [{**ROUTE, "prefix": "/"}]},
        {"routes": [{**ROUTE, "prefix": "/metrics"}]},
        {"routes": [{**ROUTE, "service": "auth-rbac"}]},
        {"routes": [{**ROUTE, "methods": ["TRACE"]}]},
    ],
)
def test_an_unusable_release_is_refused_and_the_table_stays(
    gateway: Gateway, values: dict[str, Any]
) -> None:
    before = gateway.routing.table
    with pytest.raises(ConfigRejected):
        ConfigRoutes(gateway, "sv-config:gateway-routes").apply(snapshot(4, values))
    assert gateway.routing.table is before


def test_no_release_keeps_the_file_table(gateway: Gateway) -> None:
    before = gateway.routing.table
    ConfigRoutes(gateway, "sv-config:gateway-routes").apply(snapshot(0, {}))
    assert gateway.routing.table is before


def test_the_source_setting_names_an_sv_config_namespace() -> None:
    assert parse_source("sv-config:gateway-routes") == ("gateway-routes", None)
    assert parse_source("sv-config:gateway-routes@east") == ("gateway-routes", "east")
    for bad in ("file:routes.toml", "sv-config:", "gateway-routes"):
        with pytest.raises(RouteSourceError):
            parse_source(bad)


async def test_without_sv_config_in_the_topology_the_file_table_serves(
    gateway: Gateway,
) -> None:
    routes = ConfigRoutes(gateway, "sv-config:gateway-routes")
    await routes.start()
    assert routes.client is None
    assert gateway.routing.table.match("GET", "/file") is not None
    await routes.stop()
