"""The gateway's own view: pools, instances, the route table's version. Read from the
:class:`~gateway_api.gateway.Gateway` object, not over HTTP (the console runs in it)."""

from __future__ import annotations

import time
from typing import Any

from gateway_api.gateway import Gateway
from gateway_api.upstreams.pools import Instance, Pool
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


class InstanceNotFound(LookupError):
    """No instance of that id in the gateway's pools."""


def find_instance(gateway: Gateway, instance_id: str) -> tuple[Pool, Instance]:
    for pool in gateway.upstreams.pools.values():
        for instance in pool.instances:
            if instance.spec.id == instance_id:
                return pool, instance
    raise InstanceNotFound(instance_id)


class Drains:
    """Instances an operator took out of their pool (drained) in this gateway process:
    no new requests go to them, the ones in flight finish; restored, they serve again."""

    def __init__(self) -> None:
        self._drained: dict[str, tuple[Pool, Instance]] = {}

    def drain(self, gateway: Gateway, instance_id: str) -> Instance:
        pool, instance = find_instance(gateway, instance_id)
        pool.retire(instance)
        self._drained[instance_id] = (pool, instance)
        return instance

    def restore(self, instance_id: str) -> Instance:
        try:
            pool, instance = self._drained.pop(instance_id)
        except KeyError:
            raise InstanceNotFound(instance_id) from None
        if instance in pool.draining:
            pool.draining = [i for i in pool.draining if i is not instance]
        instance.draining = False
        pool.add(instance)
        return instance

    def rows(self) -> list[dict[str, Any]]:
        """The drained instances, as ``/cluster`` shows instances (plus their pool)."""
        return [
            {"service": pool.service, "region": pool.region, **instance.snapshot()}
            for pool, instance in self._drained.values()
        ]


def eject(gateway: Gateway, instance_id: str, cool_down: float = 30.0) -> Instance:
    """Open the instance's circuit breaker for ``cool_down`` seconds (then one trial
    request decides), and tell the other workers and gateways as a passive ejection."""
    _, instance = find_instance(gateway, instance_id)
    breaker = instance.breaker
    breaker.open_by_peer(time.monotonic(), cool_down)
    if breaker.on_open is not None:
        breaker.on_open(breaker.cool_down)
    return instance


def route_policies(gateway: Gateway) -> dict[str, list[str]]:
    """The load-balancing policies the route table names for each service."""
    found: dict[str, set[str]] = {}
    for route in gateway.routing.table.routes:
        found.setdefault(route.service, set()).add(route.balancing)
    return {service: sorted(policies) for service, policies in found.items()}
