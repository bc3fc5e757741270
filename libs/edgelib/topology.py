"""The topology format: the regions, and where each service's instances listen.

A topology is a TOML file the platform owns. The gateway builds its upstream pools from
it, and edgectl starts one process per local instance. ``deploy/services.toml`` is the
registry it is generated from (``make generate``); this module only reads the result::

    [gateway]
    host = "127.0.0.1"   # where local instances listen (omitted when every one has a url)
    port = 7001
    admin_port = 7080

    [[regions]]
    name = "east"

    [[services]]
    name = "sv-user"
    region = "east"          # absent for a global service
    instances = [{ port = 7201, weight = 3 }, { url = "http://sv-user-east:7110" }]

    [[services]]
    name = "sv-money"
    region = "east"
    instances = [{ port = 7211, grpc_port = 7215 }]

An instance with a ``grpc_port`` also serves gRPC there: it is an instance of the pool
``<service>-grpc`` too (``sv-money-grpc``, id ``sv-money-east-7211-grpc``), the pool the
gateway's gRPC routes forward to; edgectl passes the port to the process
(``<PREFIX>GRPC_PORT``) and starts nothing more.

An instance gives a local ``port`` (on ``host``) or a full ``url``. Its id (in
``/cluster``, logs and metrics, and the key balancers keep their state under) is
``<service>[-<region>]-<port>``, or the ``id`` it gives: two instances that listen on the
same port of different hosts need one. Everything is checked when the file is read:
:class:`TopologyError` names the first problem.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "GatewaySpec",
    "InstanceSpec",
    "Topology",
    "TopologyError",
    "load_topology",
    "parse_topology",
]


class TopologyError(ValueError):
    """The topology file is missing, malformed or inconsistent."""


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """One instance of a service: where it listens and its share of the traffic."""

    service: str
    region: str | None
    url: str
    weight: int = 1
    port: int | None = None
    #: The ``id`` the topology gives, if any.
    name: str | None = None
    #: The port this instance also serves gRPC on (its ``<service>-grpc`` twin), if any.
    grpc_port: int | None = None
    #: For the ``<service>-grpc`` twin: the id of the instance whose listener it is.
    grpc_of: str | None = None

    @property
    def id(self) -> str:
        """Stable instance name: service, region and port (``sv-user-east-7201``)."""
        if self.name:
            return self.name
        suffix = f"-{self.region}" if self.region else ""
        return f"{self.service}{suffix}-{self.port or self.url.rsplit(':', 1)[-1]}"


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    """The gateway's listeners."""

    host: str = "127.0.0.1"
    port: int = 7001
    admin_port: int = 7080


@dataclass(frozen=True)
class Topology:
    """Regions and instances, in file order."""

    gateway: GatewaySpec
    regions: tuple[str, ...]
    instances: tuple[InstanceSpec, ...] = field(default=())

    def pools(self) -> dict[tuple[str, str | None], list[InstanceSpec]]:
        """Instances grouped by (service, region); ``None`` is the global pool."""
        result: dict[tuple[str, str | None], list[InstanceSpec]] = {}
        for inst in self.instances:
            result.setdefault((inst.service, inst.region), []).append(inst)
        return result

    def services(self) -> tuple[str, ...]:
        """Every service named, once each, in file order."""
        return tuple(dict.fromkeys(i.service for i in self.instances))

    def urls(self, service: str, region: str | None = None) -> list[str]:
        """Base URLs of one pool (empty when the topology has none)."""
        return [i.url for i in self.instances if i.service == service and i.region == region]


def load_topology(path: Path) -> Topology:
    """Read and check the topology file at ``path``."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TopologyError(f"cannot read topology {path}: {exc}") from exc
    try:
        return parse_topology(raw)
    except TopologyError as exc:
        raise TopologyError(f"{path}: {exc}") from exc


def parse_topology(raw: Mapping[str, Any]) -> Topology:
    """Typed values from a parsed topology document."""
    gateway = _gateway(_table(raw.get("gateway", {}), "[gateway]"))
    regions = _regions(raw.get("regions", []))
    instances: list[InstanceSpec] = []
    services = raw.get("services", [])
    if not isinstance(services, list):
        raise TopologyError("[[services]] must be an array of tables")
    for entry in services:
        instances.extend(_service(_table(entry, "a [[services]] entry"), gateway, regions))
    instances += [_grpc_twin(i) for i in instances if i.grpc_port is not None]
    seen: set[str] = set()
    for inst in instances:
        if inst.id in seen:
            raise TopologyError(
                f"{inst.service}: two instances have the id {inst.id}; give each its own `id`"
            )
        seen.add(inst.id)
    return Topology(gateway, regions, tuple(instances))


def _table(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TopologyError(f"{what} must be a table")
    return value


def _port(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise TopologyError(f"{what} must be a port number (1-65535), not {value!r}")
    return value


def _gateway(raw: Mapping[str, Any]) -> GatewaySpec:
    host = raw.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise TopologyError("[gateway] host must be a non-empty string")
    return GatewaySpec(
        host=host,
        port=_port(raw.get("port", 7001), "[gateway] port"),
        admin_port=_port(raw.get("admin_port", 7080), "[gateway] admin_port"),
    )


def _regions(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise TopologyError("[[regions]] must be an array of tables")
    names: list[str] = []
    for entry in raw:
        name = _table(entry, "a [[regions]] entry").get("name")
        if not isinstance(name, str) or not name:
            raise TopologyError("a region needs a name")
        if name in names:
            raise TopologyError(f"region {name!r} is listed twice")
        names.append(name)
    return tuple(names)


def _service(
    raw: Mapping[str, Any], gateway: GatewaySpec, regions: tuple[str, ...]
) -> list[InstanceSpec]:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise TopologyError("a service entry has no name")
    region = raw.get("region")
    if region is not None and region not in regions:
        raise TopologyError(f"{name}: unknown region {region!r}")
    host = raw.get("host", gateway.host)
    items = raw.get("instances", [])
    if not isinstance(items, list):
        raise TopologyError(f"{name}: instances must be an array")
    return [_instance(name, region, host, _table(i, f"{name}: an instance")) for i in items]


def _instance(service: str, region: str | None, host: str, raw: Mapping[str, Any]) -> InstanceSpec:
    port = None if raw.get("port") is None else _port(raw["port"], f"{service}: port")
    url = raw.get("url") or (f"http://{host}:{port}" if port else None)
    if not isinstance(url, str) or not url:
        raise TopologyError(f"{service}: an instance needs a port or a url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TopologyError(f"{service}: instance url {url!r} is not an http(s) URL")
    weight = raw.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise TopologyError(f"{service}: weight must be at least 1")
    name = raw.get("id")
    if name is not None and (not isinstance(name, str) or not name):
        raise TopologyError(f"{service}: an instance id must be a non-empty string")
    grpc_port = raw.get("grpc_port")
    if grpc_port is not None:
        grpc_port = _port(grpc_port, f"{service}: grpc_port")
    return InstanceSpec(service, region, url.rstrip("/"), weight, port, name, grpc_port=grpc_port)


def _grpc_twin(inst: InstanceSpec) -> InstanceSpec:
    """The instance of ``<service>-grpc`` that ``inst``'s gRPC listener is."""
    host = urlsplit(inst.url).hostname
    return InstanceSpec(
        f"{inst.service}-grpc",
        inst.region,
        f"http://{host}:{inst.grpc_port}",
        inst.weight,
        inst.grpc_port,
        f"{inst.id}-grpc",
        grpc_of=inst.id,
    )
