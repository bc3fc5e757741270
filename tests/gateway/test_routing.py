"""The route table: validation at load time, and matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_api.config import PACKAGE_DIR
from gateway_api.routing import (
    MethodNotAllowed,
    RouteTableError,
    UnsafePath,
    check_path,
    load_routes,
    parse_routes,
)


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
