"""The route table and path safety: which service owns a request path."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


class RouteTableError(ValueError):
    """The route table file is missing, malformed or inconsistent."""


class UnsafePath(ValueError):
    """A request path tries to escape its route (dot segments, encoded separators)."""


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    service: str
    scope: Literal["global", "regional"] = "global"

    def matches(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")


class RouteTable:
    """Routes sorted longest prefix first, so the most specific one wins."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: len(r.prefix), reverse=True)

    def match(self, path: str) -> Route | None:
        for route in self.routes:
            if route.matches(path):
                return route
        return None


def load_routes(path: Path) -> RouteTable:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RouteTableError(f"cannot read route table {path}: {exc}") from exc
    routes: list[Route] = []
    seen: set[str] = set()
    for item in raw.get("routes", []):
        prefix = str(item.get("prefix", "")).rstrip("/")
        service = item.get("service")
        scope = item.get("scope", "global")
        if not prefix.startswith("/") or not service:
            raise RouteTableError(f"route {item!r} needs a /prefix and a service")
        if scope not in ("global", "regional"):
            raise RouteTableError(f"route {prefix}: scope must be global or regional")
        if prefix in seen:
            raise RouteTableError(f"route {prefix} is declared twice")
        seen.add(prefix)
        routes.append(Route(prefix, service, scope))
    return RouteTable(routes)


_FORBIDDEN_ENCODED = (b"%2f", b"%5c", b"%25", b"%00")


def check_path(path: str, raw_path: bytes) -> None:
    """Refuse paths whose meaning could change between the gateway and the service."""
    lowered = raw_path.lower()
    if any(token in lowered for token in _FORBIDDEN_ENCODED):
        raise UnsafePath("encoded separators are not allowed in paths")
    if "\\" in path or "\x00" in path or "//" in path:
        raise UnsafePath("path is not in normal form")
    for segment in path.split("/"):
        if segment in (".", ".."):
            raise UnsafePath("dot segments are not allowed in paths")
