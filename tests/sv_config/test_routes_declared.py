"""The gateway's route table guards sv-config: reads need a login, edits config:edit,
releases config:publish; every public endpoint of sv-config is routed that way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway_api.routing.table import MethodNotAllowed, load_routes
from sv_config.config import Settings
from sv_config.main import create_app

ROUTES = Path(__file__).parents[2] / "app/gateway-api/gateway_api/routes.toml"
PUBLISHING = ("/api/v1/config/releases", "/api/v1/config/gray")


def expected_access(method: str, path: str) -> str:
    if method == "GET":
        return "authenticated"
    return "config:publish" if path.startswith(PUBLISHING) else "config:edit"


def declared_access(method: str, path: str) -> str:
    route = load_routes(ROUTES).match(method, path)
    assert route is not None, f"{method} {path} is not routed"
    assert route.service == "sv-config"
    if route.permission is not None:
        return f"{route.permission.obj}:{route.permission.act}"
    return route.access


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def public_endpoints(tmp_path: Path) -> list[tuple[str, str]]:
    """(method, path) of every endpoint in sv-config's OpenAPI document under the API."""
    paths = create_app(Settings(var_dir=tmp_path)).openapi()["paths"]
    return [
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/api/v1/config/") and not path.endswith("/about")
        for method in operations
    ]


def test_every_public_endpoint_is_routed_with_the_permission_it_needs(tmp_path: Path) -> None:
    endpoints = public_endpoints(tmp_path)
    assert len(endpoints) >= 20
    for method, path in endpoints:
        assert declared_access(method, concrete(path)) == expected_access(method, path), (
            method,
            path,
        )


@pytest.mark.parametrize(
    ("method", "path", "access"),
    [
        ("GET", "/api/v1/config/namespaces", "authenticated"),
        ("POST", "/api/v1/config/namespaces", "config:edit"),
        ("PUT", "/api/v1/config/drafts/prod/default/gateway-routes/items/routes", "config:edit"),
        ("PATCH", "/api/v1/config/drafts/prod/default/gateway-routes", "config:edit"),
        ("POST", "/api/v1/config/releases/prod/default/gateway-routes", "config:publish"),
        ("POST", "/api/v1/config/releases/prod/default/gateway-routes/rollback", "config:publish"),
        ("POST", "/api/v1/config/gray/prod/default/flags/promote", "config:publish"),
        ("PUT", "/api/v1/config/gray/prod/default/flags/targets", "config:publish"),
        ("GET", "/api/v1/config/releases/prod/default/flags/diff", "authenticated"),
        ("GET", "/api/v1/config/audit", "authenticated"),
    ],
)
def test_route_declarations(method: str, path: str, access: str) -> None:
    assert declared_access(method, path) == access


def test_methods_sv_config_does_not_serve_are_405_at_the_gateway() -> None:
    table = load_routes(ROUTES)
    for method, path in [
        ("POST", "/api/v1/config/audit"),
        ("DELETE", "/api/v1/config/releases/prod/default/flags"),
        ("POST", "/api/v1/config/drafts/prod/default/flags"),
    ]:
        with pytest.raises(MethodNotAllowed):
            table.match(method, path)
    assert table.match("GET", "/internal/config/watch") is None
