"""The route table and path safety: which service owns a request, and on what terms.

Every route must say who may call it, with ``access``:

- ``"public"``: anyone;
- ``"authenticated"``: any caller with a valid access token;
- ``"<object>:<action>"``: a caller holding that permission (checked against auth-rbac).

A route without ``access`` is refused when the table loads, and so is a route to a
service the topology does not know, or to a reserved prefix (``/internal`` and the
others of ``GATEWAY_RESERVED_PREFIXES``, or ``/`` which covers them).

A route answers only its ``methods``; without them, the methods of
:data:`DEFAULT_METHODS` (never ``CONNECT`` or ``TRACE``). A route takes WebSocket
upgrades only with ``websocket = true``, and only on ``GET``.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from gateway_api.security.ratelimit import RateLimit
from gateway_api.upstreams.balancing import POLICIES

#: What a route's ``balancing`` may name: the registry's policies.
BALANCING_POLICIES = frozenset(POLICIES)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: What a route without ``methods`` answers: no CONNECT (a tunnel) nor TRACE (it echoes
#: the request, cookies and all).
DEFAULT_METHODS = HTTP_METHODS
#: Never routed, whatever the configuration says: the services' signed internal API.
INTERNAL_PREFIX = "/internal"


class RouteTableError(ValueError):
    """The route table file is missing, malformed or inconsistent."""


class UnsafePath(ValueError):
    """A request path tries to escape its route (dot segments, encoded separators)."""


@dataclass(frozen=True, slots=True)
class Permission:
    obj: str
    act: str


@dataclass(frozen=True, slots=True)
class Route:
    service: str
    prefix: str | None = None
    path: str | None = None
    methods: frozenset[str] | None = None
    scope: Literal["global", "regional"] = "global"
    access: Literal["public", "authenticated", "permission"] = "authenticated"
    permission: Permission | None = None
    balancing: str = "round_robin"
    connect_timeout: float = 2.0
    read_timeout: float = 30.0
    total_timeout: float = 60.0
    retries: int = 1
    max_body: int = 1_048_576
    rate_limit: RateLimit | None = None
    #: Takes ``Upgrade: websocket`` (on GET only).
    websocket: bool = False
    #: The methods it answers: ``methods``, else :data:`DEFAULT_METHODS`.
    allowed: frozenset[str] = DEFAULT_METHODS
    #: :attr:`name`, made once by the table's loader (the metrics' ``route`` label).
    label: str = ""

    @property
    def name(self) -> str:
        methods = ",".join(sorted(self.methods)) if self.methods else "*"
        return f"{methods} {self.path or self.prefix}"

    def matches_path(self, path: str) -> bool:
        if self.path is not None:
            return path == self.path
        assert self.prefix is not None
        return path == self.prefix or path.startswith(self.prefix + "/")

    def specificity(self) -> tuple[int, int, int]:
        return (
            1 if self.path is not None else 0,
            len(self.path or self.prefix or ""),
            1 if self.methods else 0,
        )


@dataclass(frozen=True, slots=True)
class GrpcRoute:
    """A gRPC route (``[[grpc_routes]]``): ``/package.Service`` (every method) or
    ``/package.Service/Method``, run through the HTTP pipeline as :attr:`route`.

    ``route.service`` is the service (whose permissions, quotas and signature keys
    apply); ``pool`` the topology pool of its gRPC listeners (``<service>-grpc``).
    ``idempotent``: a call refused with ``UNAVAILABLE`` (or whose connection failed
    before any answer) is tried again on another instance. ``deadline``: the longest a
    call may take, whatever its ``grpc-timeout`` asks (seconds).
    """

    route: Route
    pool: str
    idempotent: bool = False
    deadline: float = 60.0


class MethodNotAllowed(Exception):
    def __init__(self, allowed: frozenset[str]) -> None:
        super().__init__("method not allowed")
        self.allowed = allowed


class RouteTable:
    """Routes ordered most specific first: exact paths, longer prefixes, method-bound."""

    def __init__(
        self,
        routes: list[Route],
        *,
        source: str = "",
        version: str = "",
        grpc: list[GrpcRoute] | None = None,
    ) -> None:
        self.routes = sorted(routes, key=Route.specificity, reverse=True)
        #: gRPC routes, most specific first (a method's own route over its service's).
        self.grpc = sorted(grpc or [], key=lambda g: g.route.specificity(), reverse=True)
        #: The services the gRPC routes name (their pools are probed with grpc.health.v1).
        self.grpc_services = frozenset(g.pool for g in self.grpc)
        self.source = source
        #: A digest of the table's document (the same document, the same version).
        self.version = version

    def match(self, method: str, path: str) -> Route | None:
        """The route for ``method path``; raises MethodNotAllowed if only the method is wrong."""
        allowed: set[str] = set()
        for route in self.routes:
            if not route.matches_path(path):
                continue
            if method in route.allowed:
                return route
            allowed |= route.allowed
        if allowed:
            raise MethodNotAllowed(frozenset(allowed))
        return None

    def match_grpc(self, path: str) -> GrpcRoute | None:
        """The gRPC route of ``/package.Service/Method``, or None."""
        for grpc in self.grpc:
            if grpc.route.matches_path(path):
                return grpc
        return None


class RouteRules:
    """What the gateway's setup allows a route to name: its services, and reserved paths."""

    __slots__ = ("reserved", "services")

    def __init__(
        self, services: frozenset[str] | None = None, reserved: tuple[str, ...] = ()
    ) -> None:
        #: The services of the topology (None: not checked, for tools that have none).
        self.services = services
        self.reserved = (INTERNAL_PREFIX, *(r for r in reserved if r != INTERNAL_PREFIX))

    def check_target(self, where: str, target: str) -> None:
        """Refuse a route at, under or above a reserved prefix."""
        for reserved in self.reserved:
            if target == reserved or target.startswith(reserved + "/"):
                raise RouteTableError(f"route {where}: {reserved} is reserved")
            if target == "/":
                raise RouteTableError(f"route {where}: / would cover the reserved {reserved}")

    def check_service(self, where: str, service: str) -> None:
        if self.services is not None and service not in self.services:
            raise RouteTableError(f"route {where}: service {service!r} is not in the topology")


def _route(item: dict[str, Any], defaults: dict[str, Any], rules: RouteRules) -> Route:
    data = {**defaults, **item}
    where = data.get("path") or data.get("prefix") or "?"
    service = data.get("service")
    if not service or not isinstance(service, str):
        raise RouteTableError(f"route {where}: no service")
    rules.check_service(where, service)
    prefix, path = _where(data, where, rules)
    access, permission = _access(data.get("access"), where)
    methods = _methods(data.get("methods"), where)
    websocket = data.get("websocket", False)
    if not isinstance(websocket, bool):
        raise RouteTableError(f"route {where}: websocket must be true or false")
    if websocket and methods is not None and "GET" not in methods:
        raise RouteTableError(f"route {where}: a WebSocket route must allow GET")
    scope = data.get("scope", "global")
    if scope not in ("global", "regional"):
        raise RouteTableError(f"route {where}: scope must be global or regional")
    balancing = data.get("balancing", "round_robin")
    if balancing not in BALANCING_POLICIES:
        raise RouteTableError(f"route {where}: unknown balancing {balancing!r}")
    numbers = _numbers(data, where)
    rate_limit = None
    name = f"{','.join(sorted(methods)) if methods else '*'} {path or prefix}"
    if data.get("rate_limit") is not None:
        rate_limit = _rate_limit(data, where, access, name)
    return Route(
        service=service,
        prefix=prefix,
        path=path,
        methods=methods,
        scope=scope,
        access=access,
        permission=permission,
        balancing=balancing,
        connect_timeout=numbers["connect_timeout"],
        read_timeout=numbers["read_timeout"],
        total_timeout=numbers["total_timeout"],
        retries=int(numbers["retries"]),
        max_body=int(numbers["max_body"]),
        rate_limit=rate_limit,
        websocket=websocket,
        allowed=methods if methods is not None else DEFAULT_METHODS,
        label=name,
    )


def _where(data: dict[str, Any], where: str, rules: RouteRules) -> tuple[str | None, str | None]:
    """The route's ``prefix`` or ``path`` (exactly one), checked against the rules."""
    prefix = data.get("prefix")
    path = data.get("path")
    if (prefix is None) == (path is None):
        raise RouteTableError(f"route {where}: give exactly one of prefix or path")
    target = str(prefix if prefix is not None else path)
    if not target.startswith("/") or (
        prefix is not None and target != "/" and target.endswith("/")
    ):
        raise RouteTableError(f"route {where}: must start with / and not end with /")
    rules.check_target(where, target)
    return prefix, path


def _access(
    value: Any, where: str
) -> tuple[Literal["public", "authenticated", "permission"], Permission | None]:
    """``public``, ``authenticated``, or ``object:action`` (a permission to check)."""
    if not value:
        raise RouteTableError(
            f"route {where}: declares no access (public, authenticated or object:action)"
        )
    if value in ("public", "authenticated"):
        return value, None
    if isinstance(value, str) and value.count(":") == 1 and all(value.split(":")):
        obj, act = value.split(":")
        return "permission", Permission(obj, act)
    raise RouteTableError(f"route {where}: access {value!r} is not valid")


def _methods(value: Any, where: str) -> frozenset[str] | None:
    """The methods a route answers (None: every default one)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise RouteTableError(f"route {where}: methods must be a list of names")
    methods = frozenset(m.upper() for m in value)
    if not methods or not methods <= HTTP_METHODS:
        raise RouteTableError(
            f"route {where}: bad methods {sorted(methods)} (allowed: "
            f"{', '.join(sorted(HTTP_METHODS))}; never CONNECT or TRACE)"
        )
    return methods


def _numbers(data: dict[str, Any], where: str) -> dict[str, float]:
    """Timeouts, retries and the body limit, with their defaults; none negative."""
    try:
        numbers = {
            "connect_timeout": float(data.get("connect_timeout", 2.0)),
            "read_timeout": float(data.get("read_timeout", 30.0)),
            "total_timeout": float(data.get("total_timeout", 60.0)),
            "retries": int(data.get("retries", 1)),
            "max_body": int(data.get("max_body", 1_048_576)),
        }
    except (TypeError, ValueError) as exc:
        raise RouteTableError(f"route {where}: {exc}") from exc
    if any(v < 0 for v in numbers.values()):
        raise RouteTableError(f"route {where}: timeouts, retries and max_body must be >= 0")
    return numbers


def _rate_limit(data: dict[str, Any], where: str, access: str, name: str) -> RateLimit:
    """The route's ``rate_limit``, counted per ``rate_limit_by`` (user or ip)."""
    by = data.get("rate_limit_by", "ip" if access == "public" else "user")
    if by == "user" and access == "public":
        raise RouteTableError(f"route {where}: a public route has no user to count by")
    try:
        return RateLimit.parse(data["rate_limit"], by, name=name)
    except ValueError as exc:
        raise RouteTableError(f"route {where}: {exc}") from exc


def parse_routes(
    raw: dict[str, Any], *, source: str = "", rules: RouteRules | None = None
) -> RouteTable:
    """Build a table from parsed TOML/JSON; every error names the offending route.

    ``rules`` gives the topology's services and the reserved prefixes; without it only
    ``/internal`` is reserved and any service name passes.
    """
    rules = rules or RouteRules()
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict):
        raise RouteTableError("defaults must be a table")
    items = raw.get("routes", [])
    if not isinstance(items, list) or not items:
        raise RouteTableError("the table has no routes")
    if not all(isinstance(item, dict) for item in items):
        raise RouteTableError("every route must be a table")
    routes = [_route(item, defaults, rules) for item in items]
    seen: set[tuple[str | None, str | None, frozenset[str] | None]] = set()
    for r in routes:
        key = (r.prefix, r.path, r.methods)
        if key in seen:
            raise RouteTableError(f"route {r.name} is declared twice")
        seen.add(key)
    grpc = _grpc_routes(raw.get("grpc_routes", []), defaults, rules)
    digest = hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS, default=str))
    return RouteTable(routes, source=source, version=digest.hexdigest()[:12], grpc=grpc)


def _grpc_routes(items: Any, defaults: dict[str, Any], rules: RouteRules) -> list[GrpcRoute]:
    """``[[grpc_routes]]``: a route per gRPC service or method (POST only, no body cap
    beyond ``max_body`` per call)."""
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise RouteTableError("grpc_routes must be an array of tables")
    found: list[GrpcRoute] = []
    seen: set[str] = set()
    for item in items:
        data = dict(item)
        where = str(data.get("path") or data.get("prefix") or "?")
        idempotent = data.pop("idempotent", False)
        deadline = data.pop("deadline", 60.0)
        pool = data.pop("pool", f"{data.get('service')}-grpc")
        if not isinstance(pool, str) or not pool:
            raise RouteTableError(f"grpc route {where}: pool must be a service name")
        # The pool may be missing from a topology (one without gRPC listeners, or
        # before discovery finds them): its calls are UNAVAILABLE until it has instances.
        if not isinstance(idempotent, bool):
            raise RouteTableError(f"grpc route {where}: idempotent must be true or false")
        if isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline <= 0:
            raise RouteTableError(f"grpc route {where}: deadline must be a positive number")
        segments = where.strip("/").split("/")
        if "." not in segments[0] or len(segments) > 2 or not all(segments):
            raise RouteTableError(
                f"grpc route {where}: give /package.Service (prefix) or "
                "/package.Service/Method (path)"
            )
        if where in seen:
            raise RouteTableError(f"grpc route {where} is declared twice")
        seen.add(where)
        for key in ("methods", "websocket"):
            data.pop(key, None)
        route = _route({**data, "methods": ["POST"]}, {**defaults, "retries": 1}, rules)
        found.append(GrpcRoute(route, pool, idempotent, float(deadline)))
    return found


def load_routes(path: Path, rules: RouteRules | None = None) -> RouteTable:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RouteTableError(f"cannot read route table {path}: {exc}") from exc
    return parse_routes(raw, source=str(path), rules=rules)


_FORBIDDEN_ENCODED = (b"%2f", b"%5c", b"%25", b"%00", b"%2e")


def check_path(path: str, raw_path: bytes) -> None:
    """Refuse paths whose meaning could change between the gateway and the service."""
    lowered = raw_path.lower()
    if any(token in lowered for token in _FORBIDDEN_ENCODED):
        raise UnsafePath("encoded separators or dots are not allowed in paths")
    if not path.startswith("/") or "\\" in path or "\x00" in path or "//" in path:
        raise UnsafePath("path is not in normal form")
    for segment in path.split("/"):
        if segment in (".", ".."):
            raise UnsafePath("dot segments are not allowed in paths")
