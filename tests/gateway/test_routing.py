"""The route table: validation at load time, and matching."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from gateway_api.config import PACKAGE_DIR, Settings
from gateway_api.gateway import Gateway
from gateway_api.routing.table import (
    DEFAULT_METHODS,
    MethodNotAllowed,
    RouteRules,
    RouteTableError,
    UnsafePath,
    check_path,
    load_routes,
    parse_routes,
)
from tests.gateway.conftest import GatewayUnderTest


def table(*routes: str) -> dict:  # type: ignore[type-arg]
    import tomllib

    return tomllib.loads("\n".join(f"[[routes]]\n{r}" for r in routes))


def test_checked_in_route_table_loads_and_every_route_declares_access() -> None:
    routes = load_routes(PACKAGE_DIR / "routes.toml")
    assert routes.routes
    assert all(r.access in ("public", "authenticated", "permission") for r in routes.routes)


def test_route_without_access_is_refused_at_load_time() -> None:
    with pytest.raises(RouteTableError, match="declares no access"):
        parse_routes(table('prefix = "/a"\nservice = "s"'))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('prefix = "/a"\nservice = "s"\naccess = "everyone"', "not valid"),
        ('prefix = "a"\nservice = "s"\naccess = "public"', "must start with /"),
        ('prefix = "/a"\naccess = "public"', "no service"),
        ('prefix = "/a"\npath = "/a"\nservice = "s"\naccess = "public"', "exactly one"),
        (
            'prefix = "/a"\nservice = "s"\naccess = "public"\nbalancing = "magic"',
            "unknown balancing",
        ),
        ('prefix = "/a"\nservice = "s"\naccess = "public"\nmethods = ["FETCH"]', "bad methods"),
        ('prefix = "/a"\nservice = "s"\naccess = "public"\nread_timeout = -1', ">= 0"),
        ('prefix = "/a"\nservice = "s"\naccess = "public"\nscope = "planet"', "scope"),
    ],
)
def test_invalid_routes_are_refused_with_a_reason(body: str, message: str) -> None:
    with pytest.raises(RouteTableError, match=message):
        parse_routes(table(body))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('prefix = "/internal"', "/internal is reserved"),
        ('prefix = "/internal/assignments"', "/internal is reserved"),
        ('path = "/internal/policy"', "/internal is reserved"),
        ('prefix = "/"', "/ would cover the reserved /internal"),
        ('path = "/healthz"', "/healthz is reserved"),
        ('prefix = "/metrics"', "/metrics is reserved"),
        ('prefix = "/a"\nmethods = ["GET", "TRACE"]', "never CONNECT or TRACE"),
        ('prefix = "/a"\nmethods = ["CONNECT"]', "never CONNECT or TRACE"),
        ('prefix = "/a"\nwebsocket = "yes"', "websocket must be true or false"),
        ('prefix = "/a"\nmethods = ["POST"]\nwebsocket = true', "must allow GET"),
    ],
)
def test_routes_to_reserved_prefixes_or_unsafe_methods_are_refused(body: str, message: str) -> None:
    rules = RouteRules(frozenset({"s"}), ("/healthz", "/readyz", "/metrics"))
    with pytest.raises(RouteTableError, match=message):
        parse_routes(table(f'{body}\nservice = "s"\naccess = "public"'), rules=rules)


def test_a_route_to_a_service_outside_the_topology_is_refused() -> None:
    rules = RouteRules(frozenset({"sv-user"}))
    with pytest.raises(RouteTableError, match="'auth-rbac' is not in the topology"):
        parse_routes(table('prefix = "/a"\nservice = "auth-rbac"\naccess = "public"'), rules=rules)
    assert parse_routes(table('prefix = "/a"\nservice = "sv-user"\naccess = "public"'), rules=rules)


def test_a_route_without_methods_answers_the_default_ones_only() -> None:
    routes = parse_routes(table('prefix = "/a"\nservice = "s"\naccess = "public"'))
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        assert routes.match(method, "/a/x") is not None
    for method in ("TRACE", "CONNECT", "PROPFIND"):
        with pytest.raises(MethodNotAllowed) as refused:
            routes.match(method, "/a/x")
        assert refused.value.allowed == DEFAULT_METHODS


def test_a_gateway_does_not_start_with_a_route_it_must_refuse(tmp_path: Path) -> None:
    topology = tmp_path / "topology.toml"
    topology.write_text('[[regions]]\nname = "east"\n[[services]]\nname = "echo"\n'
                        "instances = [{ port = 28001 }]\n")  # fmt: skip
    routes = tmp_path / "routes.toml"
    for body, message in (
        ('prefix = "/internal"\nservice = "echo"', "reserved"),
        ('prefix = "/api"\nservice = "sv-money"', "not in the topology"),
    ):
        routes.write_text(f'[[routes]]\n{body}\naccess = "public"\n')
        with pytest.raises(RouteTableError, match=message):
            Gateway(Settings(topology=topology, routes=routes, var_dir=tmp_path))


async def test_a_running_gateway_keeps_its_table_when_the_file_routes_to_internal(
    gw: GatewayUnderTest, client: httpx.AsyncClient
) -> None:
    """The reloaded file would open the upstream's /internal/secret: it is refused."""
    before = gw.gateway.routing.table
    original = gw.routes_path.read_text()
    for extra in (
        '[[routes]]\nprefix = "/internal"\nservice = "echo"\naccess = "public"\n',
        '[[routes]]\nprefix = "/api/v1/other"\nservice = "nowhere"\naccess = "public"\n',
    ):
        gw.routes_path.write_text(original + extra)
        await asyncio.sleep(1.2)  # the watcher looks every 0.5 s
        assert gw.gateway.routing.table is before
        resp = await client.get(gw.url + "/internal/secret")
        assert resp.status_code == 404
        assert resp.json()["type"].endswith("/no-route")


def test_duplicate_routes_are_refused() -> None:
    r = 'prefix = "/a"\nservice = "s"\naccess = "public"'
    with pytest.raises(RouteTableError, match="twice"):
        parse_routes(table(r, r))


def test_most_specific_route_wins() -> None:
    t = parse_routes(
        table(
            'prefix = "/api/v1/users"\nservice = "u"\naccess = "authenticated"',
            'path = "/api/v1/users"\nservice = "u"\nmethods = ["POST"]\naccess = "public"',
            'path = "/api/v1/users"\nservice = "u"\nmethods = ["GET"]\naccess = "users:list"',
            'prefix = "/api/v1/users/admin"\nservice = "u"\naccess = "users:admin"',
        )
    )
    assert t.match("POST", "/api/v1/users").access == "public"  # type: ignore[union-attr]
    listing = t.match("GET", "/api/v1/users")
    assert listing is not None
    assert listing.permission is not None
    assert (listing.permission.obj, listing.permission.act) == ("users", "list")
    assert t.match("GET", "/api/v1/users/me").access == "authenticated"  # type: ignore[union-attr]
    assert t.match("GET", "/api/v1/users/admin/x").permission.act == "admin"  # type: ignore[union-attr]
    assert t.match("GET", "/api/v1/usersx") is None


def test_wrong_method_on_a_method_bound_route_is_method_not_allowed() -> None:
    t = parse_routes(table('path = "/jwks"\nservice = "a"\nmethods = ["GET"]\naccess = "public"'))
    with pytest.raises(MethodNotAllowed) as info:
        t.match("DELETE", "/jwks")
    assert info.value.allowed == {"GET"}


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/a/../b", b"/a/../b"),
        ("/a/./b", b"/a/./b"),
        ("/a/../b", b"/a/%2e%2e/b"),
        ("/a//b", b"/a//b"),
        ("/a/b/c", b"/a/b%2fc"),
        ("/a/%2e", b"/a/%252e"),
        ("/a\\b", b"/a%5cb"),
    ],
)
def test_unsafe_paths_are_refused(path: str, raw: bytes) -> None:
    with pytest.raises(UnsafePath):
        check_path(path, raw)


def test_ordinary_paths_pass() -> None:
    check_path("/api/v1/users/me", b"/api/v1/users/me")
    check_path("/api/v1/users/caf\u00e9", b"/api/v1/users/caf%C3%A9")


def test_missing_file_is_a_route_table_error(tmp_path: Path) -> None:
    with pytest.raises(RouteTableError, match="cannot read"):
        load_routes(tmp_path / "nope.toml")
