"""The topology file: regions, services and their instances."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path


class TopologyError(ValueError):
    """The topology file is missing, malformed or inconsistent."""


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    service: str
    region: str | None
    url: str
    weight: int = 1
    port: int | None = None

    @property
    def id(self) -> str:
        suffix = f"-{self.region}" if self.region else ""
        return f"{self.service}{suffix}-{self.port or self.url.rsplit(':', 1)[-1]}"


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    host: str = "127.0.0.1"
    port: int = 7001
    admin_port: int = 7080


@dataclass(frozen=True)
class Topology:
    gateway: GatewaySpec
    regions: tuple[str, ...]
    instances: tuple[InstanceSpec, ...] = field(default=())

    def pools(self) -> dict[tuple[str, str | None], list[InstanceSpec]]:
        result: dict[tuple[str, str | None], list[InstanceSpec]] = {}
        for inst in self.instances:
            result.setdefault((inst.service, inst.region), []).append(inst)
        return result


def load_topology(path: Path) -> Topology:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TopologyError(f"cannot read topology {path}: {exc}") from exc
    gw = raw.get("gateway", {})
    gateway = GatewaySpec(
        host=gw.get("host", "127.0.0.1"),
        port=int(gw.get("port", 7001)),
        admin_port=int(gw.get("admin_port", 7080)),
    )
    regions = tuple(r["name"] for r in raw.get("regions", []))
    instances: list[InstanceSpec] = []
    for svc in raw.get("services", []):
        name = svc.get("name")
        if not name:
            raise TopologyError("a service entry has no name")
        region = svc.get("region")
        if region is not None and region not in regions:
            raise TopologyError(f"{name}: unknown region {region!r}")
        host = svc.get("host", gateway.host)
        for item in svc.get("instances", []):
            port = item.get("port")
            url = item.get("url") or (f"http://{host}:{port}" if port else None)
            if not url:
                raise TopologyError(f"{name}: an instance needs a port or a url")
            weight = int(item.get("weight", 1))
            if weight < 1:
                raise TopologyError(f"{name}: weight must be at least 1")
            instances.append(
                InstanceSpec(name, region, url.rstrip("/"), weight, int(port) if port else None)
            )
    return Topology(gateway, regions, tuple(instances))
