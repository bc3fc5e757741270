"""What to run for a topology: one process spec per service instance, plus the gateway."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from edgectl.keys import KeyStore
from edgectl.registry import Registry, RegistryError, Service, peer_settings
from edgelib.topology import Topology


def env_prefix(registry: Registry, service: str) -> str:
    return registry.service(service).prefix


@dataclass
class ProcessSpec:
    name: str
    service: str
    region: str | None
    port: int
    ready_url: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    admin_url: str | None = None

    public_url: str | None = None
    #: The service's settings prefix (``SV_USER_``): ``edgectl scale`` sets PORT etc.
    prefix: str = ""

    @property
    def url(self) -> str:
        return self.public_url or self.ready_url.rsplit("/", 1)[0]


def peer_env(registry: Registry, topology: Topology, service: str) -> dict[str, str]:
    """The peer settings (deploy/services.toml) of ``service``, with the topology's URLs."""
    prefix = registry.service(service).prefix

    def urls(peer: Service, region: str | None) -> list[str]:
        return topology.urls(peer.name, region)

    settings = peer_settings(registry, urls, topology.regions)
    return {name: value for name, value in settings if name.startswith(prefix)}


def process_specs(
    registry: Registry, topology: Topology, topology_path: Path, var_dir: Path
) -> list[ProcessSpec]:
    """One spec per instance in the topology, then the gateway, in start order."""
    twins = {i.service for i in topology.instances if i.grpc_of is not None}
    unknown = sorted(set(topology.services()) - set(registry.packages) - twins)
    if unknown:
        raise RegistryError(
            f"{topology_path}: not in the registry (deploy/services.toml): {', '.join(unknown)}"
        )
    specs: list[ProcessSpec] = []
    host = topology.gateway.host
    # Every process ships its logs to sv-log (the first instance) unless told otherwise.
    log_url = os.environ.get("EDGE_LOG_URL") or next(
        (i.url for i in topology.instances if i.service == "sv-log"), ""
    )
    rbac_url = ",".join(topology.urls("auth-rbac"))
    for inst in topology.instances:
        if inst.port is None or inst.grpc_of is not None:
            continue  # remote (container, k8s), or a gRPC listener of an instance started
        prefix = env_prefix(registry, inst.service)
        env = {
            f"{prefix}PORT": str(inst.port),
            f"{prefix}HOST": host,
            f"{prefix}INSTANCE_ID": inst.id,
            # With EDGE_DISCOVERY=etcd the instance registers the topology's weight.
            f"{prefix}DISCOVERY_WEIGHT": str(inst.weight),
            "EDGE_VAR_DIR": str(var_dir),
            "EDGE_LOG_URL": log_url,
            "EDGE_SERVICE_KEYS_FILE": str(KeyStore(var_dir / "keys").ring_path(inst.service)),
            "EDGE_AUTH_RBAC_URL": rbac_url,
        }
        if inst.region:
            env[f"{prefix}REGION"] = inst.region
        if inst.grpc_port is not None:
            env[f"{prefix}GRPC_PORT"] = str(inst.grpc_port)
        env.update(peer_env(registry, topology, inst.service))
        specs.append(
            ProcessSpec(
                name=inst.id,
                service=inst.service,
                region=inst.region,
                port=inst.port,
                ready_url=f"http://{host}:{inst.port}/readyz",
                argv=[sys.executable, "-m", registry.service(inst.service).package],
                env=env,
                prefix=prefix,
            )
        )
    gw = topology.gateway
    specs.append(
        ProcessSpec(
            name="gateway-api",
            service="gateway-api",
            region=None,
            port=gw.port,
            ready_url=f"http://127.0.0.1:{gw.admin_port}/readyz",
            argv=[sys.executable, "-m", registry.gateway.package],
            env={
                "GATEWAY_HOST": gw.host,
                "GATEWAY_PORT": str(gw.port),
                "GATEWAY_ADMIN_PORT": str(gw.admin_port),
                "GATEWAY_INSTANCE_ID": "gateway-api-1",
                "GATEWAY_TOPOLOGY": str(topology_path.resolve()),
                "EDGE_VAR_DIR": str(var_dir),
                "EDGE_LOG_URL": log_url,
                "EDGE_SERVICE_KEYS_FILE": str(KeyStore(var_dir / "keys").ring_path("gateway-api")),
            },
            admin_url=f"http://127.0.0.1:{gw.admin_port}",
            public_url=f"http://{gw.host}:{gw.port}",
        )
    )
    return specs


def child_env(spec: ProcessSpec) -> dict[str, str]:
    env = dict(os.environ)
    env.update(spec.env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def write_pid(path: Path, pid: int) -> None:
    """Write ``path`` whole or not at all: a reader never sees an empty or half file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(str(pid))
    partial.replace(path)
