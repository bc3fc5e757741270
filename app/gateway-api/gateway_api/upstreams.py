"""Upstream pools: instances, their health and counters, and the choice of one."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from gateway_api.topology import InstanceSpec, Topology


@dataclass(slots=True)
class Instance:
    spec: InstanceSpec
    healthy: bool = True
    in_flight: int = 0
    served: int = 0
    errors: int = 0
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_probe: float = 0.0
    last_error: str | None = None

    @property
    def url(self) -> str:
        return self.spec.url

    def snapshot(self) -> dict[str, object]:
        return {
            "id": self.spec.id,
            "url": self.spec.url,
            "weight": self.spec.weight,
            "health": "up" if self.healthy else "down",
            "in_flight": self.in_flight,
            "requests": self.served,
            "errors": self.errors,
            "last_probe_age_s": round(time.monotonic() - self.last_probe, 3)
            if self.last_probe
            else None,
            "last_error": self.last_error,
        }


@dataclass
class Pool:
    """The instances of one service in one region (or of a global service)."""

    service: str
    region: str | None
    instances: list[Instance]
    policy: str = "round_robin"
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def candidates(self, exclude: set[str] | None = None) -> list[Instance]:
        return [i for i in self.instances if i.healthy and (not exclude or i.url not in exclude)]

    def choose(self, exclude: set[str] | None = None) -> Instance | None:
        """Round robin over the healthy instances not yet tried for this request."""
        live = self.candidates(exclude)
        if not live:
            return None
        return live[next(self._counter) % len(live)]

    def snapshot(self) -> dict[str, object]:
        return {
            "service": self.service,
            "region": self.region,
            "policy": self.policy,
            "healthy": sum(1 for i in self.instances if i.healthy),
            "instances": [i.snapshot() for i in self.instances],
        }


class Upstreams:
    """Every pool of the topology, addressed by (service, region)."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.pools: dict[tuple[str, str | None], Pool] = {
            key: Pool(key[0], key[1], [Instance(spec) for spec in specs])
            for key, specs in topology.pools().items()
        }

    def pool(self, service: str, region: str | None) -> Pool | None:
        return self.pools.get((service, region))

    def all_instances(self) -> list[Instance]:
        return [i for pool in self.pools.values() for i in pool.instances]
