"""The JSON Schema of a route table, for the sv-config namespace the gateway follows.

Given to that namespace (``PUT /api/v1/config/namespaces/{ns}/schema``), it makes
sv-config refuse with 422, before anything is released, a table that routes to
``/internal`` or another reserved prefix (or ``/``, which covers them), names a
service outside the topology, lists a method the gateway never answers, or lacks
``access``. The gateway checks the same again on every release it receives (and keeps
its running table when one fails), so a namespace without this schema is still safe.

``python -m gateway_api.routing.schema [--topology FILE] [--reserved /a,/b]`` prints it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from gateway_api.routing.table import BALANCING_POLICIES, HTTP_METHODS, INTERNAL_PREFIX
from gateway_api.topology import load_topology

_ACCESS = "^(public|authenticated|[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+)$"


def target_pattern(reserved: tuple[str, ...]) -> str:
    """A path or prefix that starts with ``/`` and is not at or under a reserved prefix."""
    names = sorted({INTERNAL_PREFIX, *reserved})
    alternatives = "|".join(re.escape(name.strip("/")) for name in names)
    return f"^/(?!({alternatives})(/|$)).+"


def route_table_schema(services: list[str], reserved: tuple[str, ...] = ()) -> dict[str, Any]:
    """The schema of ``{"routes": [...], "defaults": {...}}`` for these services."""
    target = {"type": "string", "pattern": target_pattern(reserved)}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "gateway route table",
        "type": "object",
        "required": ["routes"],
        "additionalProperties": False,
        "properties": {
            "defaults": {"type": "object"},
            # gRPC routes (routing/table.py GrpcRoute), checked again by the gateway.
            "grpc_routes": {"type": "array", "items": {"type": "object"}},
            "routes": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["service", "access"],
                    "oneOf": [{"required": ["prefix"]}, {"required": ["path"]}],
                    "properties": {
                        "prefix": target,
                        "path": target,
                        "service": {"enum": sorted(set(services))},
                        "access": {"type": "string", "pattern": _ACCESS},
                        "methods": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"enum": sorted(HTTP_METHODS)},
                        },
                        "websocket": {"type": "boolean"},
                        # The registry's policies (upstreams/balancing.py POLICIES).
                        "balancing": {"enum": sorted(BALANCING_POLICIES)},
                    },
                },
            },
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", type=Path, default=Path("deploy/local/topology.toml"))
    parser.add_argument("--reserved", default="/internal,/healthz,/readyz,/metrics")
    args = parser.parse_args(argv)
    services = sorted({i.service for i in load_topology(args.topology).instances})
    reserved = tuple(p.strip() for p in args.reserved.split(",") if p.strip())
    json.dump(route_table_schema(services, reserved), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
