"""``deploy/services.toml``: the services and regions every generated list comes from."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DEFAULT_REGISTRY = Path("deploy/services.toml")
#: The registry of the tree edgectl itself comes from (tools/edgectl/ -> the root).
SOURCE_REGISTRY = Path(__file__).resolve().parents[2] / DEFAULT_REGISTRY

Plane = Literal["gateway", "global", "regional"]
PLANES: tuple[Plane, ...] = ("gateway", "global", "regional")
#: Values of a service's ``env`` table: facts about the regions, not about a peer.
REGION_FACTS = ("regions", "first-region")
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")
PACKAGE = re.compile(r"^[a-z][a-z0-9_]*$")
REGION = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class RegistryError(ValueError):
    """deploy/services.toml is malformed or inconsistent."""


@dataclass(frozen=True, slots=True)
class LocalInstance:
    """One instance of the local stack (and one container in compose)."""

    port: int
    weight: int = 1
    #: Where it also serves gRPC (the service's ``grpc_port`` setting), if it does.
    grpc_port: int | None = None


@dataclass(frozen=True)
class Service:
    """One service of the registry."""

    name: str
    package: str
    path: str
    plane: Plane
    port: int
    prefix: str
    database: bool
    #: Local instances by region (``None`` for a global service).
    local: Mapping[str | None, tuple[LocalInstance, ...]] = field(default_factory=dict)
    peers: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    replicas: Mapping[str, int] = field(default_factory=dict)
    admin_port: int | None = None
    #: Its gRPC listener's port in containers and Kubernetes (``<PREFIX>GRPC_PORT``).
    grpc_port: int | None = None

    @property
    def regional(self) -> bool:
        return self.plane == "regional"


@dataclass(frozen=True)
class Overlay:
    """A Kubernetes overlay: where its images come from."""

    name: str
    tag: str
    image_registry: str | None = None


@dataclass(frozen=True)
class Registry:
    """Every service (gateway first) and region, in file order."""

    host: str
    regions: tuple[str, ...]
    services: tuple[Service, ...]
    overlays: tuple[Overlay, ...]

    @property
    def gateway(self) -> Service:
        return next(s for s in self.services if s.plane == "gateway")

    def of_plane(self, plane: Plane) -> tuple[Service, ...]:
        return tuple(s for s in self.services if s.plane == plane)

    def service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)

    @property
    def packages(self) -> dict[str, str]:
        """Service name -> Python package."""
        return {s.name: s.package for s in self.services}


def peer_settings(
    registry: Registry,
    urls: Callable[[Service, str | None], list[str]],
    regions: Sequence[str],
) -> list[tuple[str, str]]:
    """(setting, value) of every service's ``peers`` and ``env``, in registry order.

    ``urls`` gives a pool's base URLs where the settings are used (local ports, compose
    containers, Kubernetes Services). A global peer's value is its URLs comma-separated; a
    regional peer's is JSON ``{region: "url,url"}`` over the regions that have any. A
    setting with nothing to say is left out.
    """
    found: list[tuple[str, str]] = []
    for svc in registry.services:
        for setting, peer_name in svc.peers.items():
            peer = registry.service(peer_name)
            if peer.regional:
                by_region = {r: ",".join(urls(peer, r)) for r in regions}
                filled = {r: u for r, u in by_region.items() if u}
                value = _json(filled) if filled else ""
            else:
                value = ",".join(urls(peer, None))
            found.append((setting, value))
        for setting, fact in svc.env.items():
            if fact == "first-region":
                found.append((setting, regions[0] if regions else ""))
            else:
                found.append((setting, _json(list(regions))))
    return [(setting, value) for setting, value in found if value]


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def env_prefix(name: str) -> str:
    """The settings prefix a service's name gives it (``sv-foo`` -> ``SV_FOO_``)."""
    return name.upper().replace("-", "_") + "_"


def default_registry() -> Path:
    """``deploy/services.toml`` of the working directory, else of edgectl's own tree."""
    return DEFAULT_REGISTRY if DEFAULT_REGISTRY.is_file() else SOURCE_REGISTRY


def load_registry(path: Path = DEFAULT_REGISTRY) -> Registry:
    """Read and check the registry file."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"cannot read {path}: {exc}") from exc
    try:
        return parse_registry(raw)
    except RegistryError as exc:
        raise RegistryError(f"{path}: {exc}") from exc


def parse_registry(raw: Mapping[str, Any]) -> Registry:
    """Typed, checked values from a parsed registry document."""
    regions = tuple(
        _str(_table(r, "a [[regions]] entry").get("name"), "a region's name", REGION)
        for r in _list(raw.get("regions", []), "[[regions]]")
    )
    if not regions or len(set(regions)) != len(regions):
        raise RegistryError("regions must be listed, each once")
    services = tuple(
        _service(_table(s, "a [[services]] entry"), regions)
        for s in _list(raw.get("services", []), "[[services]]")
    )
    registry = Registry(
        host=_str(_table(raw.get("local", {}), "[local]").get("host", "127.0.0.1"), "[local] host"),
        regions=regions,
        services=services,
        overlays=tuple(
            Overlay(name, _str(o.get("tag"), f"overlay {name}: tag"), o.get("image_registry"))
            for name, o in _table(raw.get("overlays", {}), "[overlays]").items()
        ),
    )
    _check_whole(registry)
    return registry


def _table(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RegistryError(f"{what} must be a table")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise RegistryError(f"{what} must be an array of tables")
    return value


def _str(value: object, what: str, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise RegistryError(f"{what} must be a non-empty string")
    if pattern is not None and not pattern.match(value):
        raise RegistryError(f"{what} {value!r} does not match {pattern.pattern}")
    return value


def _port(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value <= 65535:
        raise RegistryError(f"{what} must be a port number from 1024 to 65535, not {value!r}")
    return value


def _instances(value: object, what: str) -> tuple[LocalInstance, ...]:
    if not isinstance(value, list) or not value:
        raise RegistryError(f"{what} must be a non-empty list of {{ port = N }}")
    found = []
    for item in value:
        if not isinstance(item, Mapping):
            raise RegistryError(f"{what} must be a non-empty list of {{ port = N }}")
        weight = item.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise RegistryError(f"{what}: weight must be at least 1")
        grpc_port = item.get("grpc_port")
        found.append(
            LocalInstance(
                _port(item.get("port"), f"{what}: port"),
                weight,
                None if grpc_port is None else _port(grpc_port, f"{what}: grpc_port"),
            )
        )
    return tuple(found)


def _service(raw: Mapping[str, Any], regions: tuple[str, ...]) -> Service:
    name = _str(raw.get("name"), "a service's name", NAME)
    plane = raw.get("plane")
    if plane not in PLANES:
        raise RegistryError(f"{name}: plane must be one of {', '.join(PLANES)}")
    local: dict[str | None, tuple[LocalInstance, ...]] = {}
    if plane == "global":
        local[None] = _instances(raw.get("local"), f"{name}: local")
    elif plane == "regional":
        table = raw.get("local")
        if not isinstance(table, Mapping):
            raise RegistryError(f"{name}: local must give each region its instances")
        for region in regions:
            if region not in table:
                raise RegistryError(
                    f"{name}: no local instances in region {region!r}; "
                    f"add `local.{region} = [{{ port = N }}]`"
                )
            local[region] = _instances(table[region], f"{name}: local.{region}")
        for region in table:
            if region not in regions:
                raise RegistryError(f"{name}: local.{region}: no such region")
    env = dict(_table(raw.get("env", {}), f"{name}: env"))
    for key, fact in env.items():
        if fact not in REGION_FACTS:
            raise RegistryError(f"{name}: env.{key} must be one of {', '.join(REGION_FACTS)}")
    replicas = dict(_table(raw.get("replicas", {}), f"{name}: replicas"))
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in replicas.values()):
        raise RegistryError(f"{name}: replicas must be positive whole numbers")
    admin_port = raw.get("admin_port")
    grpc_port = raw.get("grpc_port")
    return Service(
        name=name,
        package=_str(raw.get("package"), f"{name}: package", PACKAGE),
        path=_str(raw.get("path", f"app/{name}"), f"{name}: path"),
        plane=plane,
        port=_port(raw.get("port"), f"{name}: port"),
        prefix=_str(raw.get("prefix", env_prefix(name)), f"{name}: prefix"),
        database=bool(raw.get("database", False)),
        local=local,
        peers=dict(_table(raw.get("peers", {}), f"{name}: peers")),
        env=env,
        replicas=replicas,
        admin_port=None if admin_port is None else _port(admin_port, f"{name}: admin_port"),
        grpc_port=None if grpc_port is None else _port(grpc_port, f"{name}: grpc_port"),
    )


def _check_whole(registry: Registry) -> None:
    """Facts that span services: one gateway, unique names, ports and known peers."""
    names = [s.name for s in registry.services]
    if len(set(names)) != len(names):
        raise RegistryError("a service is listed twice")
    if len(set(registry.packages.values())) != len(names):
        raise RegistryError("two services share a package")
    if len(registry.of_plane("gateway")) != 1:
        raise RegistryError('exactly one service must have plane = "gateway"')
    if registry.gateway.admin_port is None:
        raise RegistryError("the gateway needs an admin_port")
    if registry.services[0].plane != "gateway":
        raise RegistryError("list the gateway first")
    gateway = registry.gateway
    owners = {gateway.port: gateway.name, gateway.admin_port or gateway.port: gateway.name}
    for svc in registry.services:
        for region, instances in svc.local.items():
            for inst in instances:
                where = f"{svc.name} {region or ''}".rstrip()
                for port in (inst.port, inst.grpc_port):
                    if port is None:
                        continue
                    if port in owners:
                        raise RegistryError(
                            f"local port {port} of {where} is taken by {owners[port]}"
                        )
                    owners[port] = where
        for setting, peer in svc.peers.items():
            if peer not in names:
                raise RegistryError(f"{svc.name}: peers.{setting} names no service: {peer!r}")
            if not setting.startswith(svc.prefix):
                raise RegistryError(f"{svc.name}: peers.{setting} must start with {svc.prefix}")
    for svc in registry.services:
        for overlay in svc.replicas:
            if overlay not in {o.name for o in registry.overlays}:
                raise RegistryError(f"{svc.name}: replicas.{overlay}: no such overlay")
