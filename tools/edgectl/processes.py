"""What to run for a topology: one process spec per service instance, plus the gateway."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gateway_api.topology import Topology

PACKAGES = {
    "gateway-api": "gateway_api",
    "sv-region": "sv_region",
    "auth-jwt": "auth_jwt",
    "auth-rbac": "auth_rbac",
    "sv-config": "sv_config",
    "sv-log": "sv_log",
    "sv-user": "sv_user",
    "sv-money": "sv_money",
    "sv-notice": "sv_notice",
}


def env_prefix(service: str) -> str:
    return service.upper().replace("-", "_").replace("GATEWAY_API", "GATEWAY") + "_"


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

    @property
    def url(self) -> str:
        return self.public_url or self.ready_url.rsplit("/", 1)[0]


def _urls(topology: Topology, service: str, region: str | None = None) -> str:
    return ",".join(i.url for i in topology.instances if (i.service, i.region) == (service, region))


def peer_env(topology: Topology, service: str) -> dict[str, str]:
    """Where a service finds the peers it calls, from the topology."""
    sv_users = {r: _urls(topology, "sv-user", r) for r in topology.regions}
    sv_users = {r: urls for r, urls in sv_users.items() if urls}
    # Where platform events go (edgelib.events): each region's sv-notice.
    sv_notices = {r: _urls(topology, "sv-notice", r) for r in topology.regions}
    notice_urls = json.dumps({r: urls for r, urls in sv_notices.items() if urls})
    env: dict[str, str] = {}
    if service == "sv-region":
        env["SV_REGION_REGIONS"] = json.dumps(list(topology.regions))
    elif service == "sv-user":
        env["SV_USER_REGION_PEERS"] = json.dumps(sv_users)
        env["SV_USER_SV_REGION_URL"] = _urls(topology, "sv-region")
        env["SV_USER_AUTH_JWT_URL"] = _urls(topology, "auth-jwt")
        env["SV_USER_AUTH_RBAC_URL"] = _urls(topology, "auth-rbac")
    elif service == "sv-money":
        sv_money = {r: _urls(topology, "sv-money", r) for r in topology.regions}
        env["SV_MONEY_PEERS"] = json.dumps({r: urls for r, urls in sv_money.items() if urls})
        env["SV_MONEY_SV_REGION_URL"] = _urls(topology, "sv-region")
        env["SV_MONEY_NOTICE_URLS"] = notice_urls
    elif service == "sv-notice":
        env["SV_NOTICE_PEERS"] = notice_urls
        env["SV_NOTICE_SV_REGION_URL"] = _urls(topology, "sv-region")
    elif service == "auth-jwt":
        env["AUTH_JWT_SV_USER_URLS"] = json.dumps(sv_users)
        env["AUTH_JWT_SV_REGION_URL"] = _urls(topology, "sv-region")
        env["AUTH_JWT_AUTH_RBAC_URL"] = _urls(topology, "auth-rbac")
        env["AUTH_JWT_NOTICE_URLS"] = notice_urls
        if topology.regions:
            env["AUTH_JWT_ADMIN_REGION"] = topology.regions[0]
    return {name: value for name, value in env.items() if value}


def process_specs(topology: Topology, topology_path: Path, var_dir: Path) -> list[ProcessSpec]:
    """One spec per instance in the topology, then the gateway, in start order."""
    specs: list[ProcessSpec] = []
    host = topology.gateway.host
    # Every process ships its logs to sv-log (the first instance) unless told otherwise.
    log_url = os.environ.get("EDGE_LOG_URL") or next(
        (i.url for i in topology.instances if i.service == "sv-log"), ""
    )
    for inst in topology.instances:
        if inst.port is None:
            continue  # remote instance (container, k8s): not ours to start
        prefix = env_prefix(inst.service)
        env = {
            f"{prefix}PORT": str(inst.port),
            f"{prefix}HOST": host,
            f"{prefix}INSTANCE_ID": inst.id,
            "EDGE_VAR_DIR": str(var_dir),
            "EDGE_LOG_URL": log_url,
        }
        if inst.region:
            env[f"{prefix}REGION"] = inst.region
        env.update(peer_env(topology, inst.service))
        specs.append(
            ProcessSpec(
                name=inst.id,
                service=inst.service,
                region=inst.region,
                port=inst.port,
                ready_url=f"http://{host}:{inst.port}/readyz",
                argv=[sys.executable, "-m", PACKAGES[inst.service]],
                env=env,
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
            argv=[sys.executable, "-m", "gateway_api"],
            env={
                "GATEWAY_HOST": gw.host,
                "GATEWAY_PORT": str(gw.port),
                "GATEWAY_ADMIN_PORT": str(gw.admin_port),
                "GATEWAY_INSTANCE_ID": "gateway-api-1",
                "GATEWAY_TOPOLOGY": str(topology_path.resolve()),
                "EDGE_VAR_DIR": str(var_dir),
                "EDGE_LOG_URL": log_url,
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
