"""The gateway's own view: pools, instances, the route table's version. Read from the
:class:`~gateway_api.gateway.Gateway` object, not over HTTP (the console runs in it)."""

from __future__ import annotations

from typing import Any

from gateway_api.gateway import Gateway
from gateway_api.workers import with_workers


def cluster(gateway: Gateway) -> dict[str, Any]:
    """``GET /cluster``'s document: every pool and instance, counters of all workers."""
    return with_workers(gateway, gateway.cluster())


def service_names(snapshot: dict[str, Any]) -> list[str]:
    return sorted({pool["service"] for pool in snapshot.get("services", [])})


def route_table_version(gateway: Gateway) -> dict[str, Any]:
    """Where the gateway's route table came from and how many routes it has."""
    table = gateway.routing.table
    return {"source": table.source, "count": len(table.routes)}
