"""Upstream pools: instances with health, circuit breakers and counters."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from gateway_api.topology import InstanceSpec, Topology
from gateway_api.upstreams.balancing import POLICIES, Balancer

CircuitState = Literal["closed", "open", "half_open"]


@dataclass(slots=True)
class CircuitBreaker:
    """Per-instance breaker fed by passive signals (connection errors, 5xx, timeouts).

    ``threshold`` consecutive failures open it; after ``cool_down`` seconds one trial
    request is let through (half-open): success closes it, failure re-opens it with
    twice the cool-down (at most ``max_cool_down``).
    """

    threshold: int = 3
    base_cool_down: float = 2.0
    max_cool_down: float = 30.0
    state: CircuitState = "closed"
    failures: int = 0
    cool_down: float = 2.0
    opened_at: float = 0.0
    trial_in_flight: bool = False
    #: Called with the cool-down when this breaker opens (the gateway tells its peers).
    on_open: Callable[[float], None] | None = None

    def available(self, now: float) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open":
            return now - self.opened_at >= self.cool_down
        return not self.trial_in_flight

    def on_dispatch(self, now: float) -> None:
        if self.state == "open" and now - self.opened_at >= self.cool_down:
            self.state = "half_open"
        if self.state == "half_open":
            self.trial_in_flight = True

    def on_success(self) -> None:
        self.state = "closed"
        self.failures = 0
        self.trial_in_flight = False
        self.cool_down = self.base_cool_down

    def on_failure(self, now: float) -> None:
        self.failures += 1
        self.trial_in_flight = False
        if self.state == "half_open":
            self.cool_down = min(self.cool_down * 2, self.max_cool_down)
            self.state, self.opened_at = "open", now
        elif self.state == "closed" and self.failures >= self.threshold:
            self.state, self.opened_at = "open", now
        else:
            return
        if self.on_open is not None:
            self.on_open(self.cool_down)

    def open_by_peer(self, now: float, cool_down: float) -> bool:
        """Another worker ejected this instance: stop sending to it for ``cool_down``.

        A breaker already open keeps its own timing; a peer's news is never re-announced.
        """
        if self.state == "open":
            return False
        self.state, self.opened_at = "open", now
        self.cool_down = min(max(cool_down, self.base_cool_down), self.max_cool_down)
        self.failures = max(self.failures, self.threshold)
        self.trial_in_flight = False
        return True

    def reset(self) -> None:
        self.on_success()


@dataclass(slots=True)
class Instance:
    spec: InstanceSpec
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    #: ``host:port`` as the Host header sends it (encoded once, not per request).
    host: bytes = b""
    healthy: bool = True
    in_flight: int = 0
    served: int = 0
    errors: int = 0
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_probe: float = 0.0
    last_error: str | None = None
    #: Left its pool (discovery said it is gone): no new requests, in-flight ones finish.
    draining: bool = False
    #: When discovery added it (``time.monotonic()``); 0.0 for a topology instance.
    joined: float = 0.0
    #: When its first health probe passed after joining (the join-to-traffic latency).
    ready_at: float = 0.0

    def __post_init__(self) -> None:
        self.host = self.spec.url.removeprefix("http://").encode()

    @property
    def url(self) -> str:
        return self.spec.url

    def eligible(self, now: float) -> bool:
        return self.healthy and self.breaker.available(now)

    def snapshot(self) -> dict[str, object]:
        return {
            "id": self.spec.id,
            "url": self.spec.url,
            "weight": self.spec.weight,
            "state": "draining" if self.draining else "active",
            "health": "up" if self.healthy else "down",
            "circuit": self.breaker.state,
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
    balancers: dict[str, Balancer] = field(default_factory=dict)
    #: Instances that left but still have requests in flight (shown in ``/cluster``).
    draining: list[Instance] = field(default_factory=list)

    def add(self, instance: Instance) -> None:
        """A new member. The list is replaced, not changed in place, so a choice being
        made right now sees the old one whole; balancer state for the others is kept."""
        self.instances = [*self.instances, instance]

    def retire(self, instance: Instance) -> None:
        """Take ``instance`` out of the choice; its requests in flight complete."""
        self.instances = [i for i in self.instances if i is not instance]
        instance.draining = True
        if instance.in_flight:
            self.draining.append(instance)

    def reap(self) -> list[Instance]:
        """Forget the draining instances whose last request finished; those forgotten."""
        done = [i for i in self.draining if not i.in_flight]
        if done:
            self.draining = [i for i in self.draining if i.in_flight]
        return done

    #: ``service/region`` (or ``service`` when global): the metrics' ``upstream`` label.
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            self.label = self.service if self.region is None else f"{self.service}/{self.region}"

    def choose(
        self, policy: str, key: str | None = None, exclude: set[str] | None = None
    ) -> Instance | None:
        """An eligible instance not in ``exclude``, picked by ``policy``; None if none."""
        now = time.monotonic()
        instances = self.instances
        if len(instances) == 1 and not exclude:
            # The common small pool: no list to build, no policy to consult.
            only = instances[0]
            if not only.eligible(now):
                return None
            only.breaker.on_dispatch(now)
            return only
        eligible = [
            i for i in instances if i.eligible(now) and (not exclude or i.url not in exclude)
        ]
        if not eligible:
            return None
        balancer = self.balancers.get(policy)
        if balancer is None:
            balancer = self.balancers[policy] = POLICIES[policy]()
        chosen = balancer.choose(self.instances, eligible, key)
        chosen.breaker.on_dispatch(now)
        return chosen

    def snapshot(self) -> dict[str, object]:
        return {
            "service": self.service,
            "region": self.region,
            "policies": sorted(self.balancers) or ["round_robin"],
            "healthy": sum(1 for i in self.instances if i.healthy),
            "instances": [i.snapshot() for i in (*self.instances, *self.draining)],
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

    def ensure_pool(self, service: str, region: str | None) -> Pool:
        """The pool of (service, region), made empty when discovery names a new one."""
        pool = self.pools.get((service, region))
        if pool is None:
            pool = self.pools[(service, region)] = Pool(service, region, [])
        return pool

    def all_instances(self) -> list[Instance]:
        return [i for pool in self.pools.values() for i in pool.instances]


class RetryBudget:
    """Retries may add at most ``ratio`` of the request rate, plus ``floor`` per second.

    A token bucket: every request deposits ``ratio`` of a token, time deposits
    ``floor`` tokens a second, a retry spends one. It keeps retries from multiplying
    load when a whole service is failing.
    """

    def __init__(self, ratio: float = 0.2, floor: float = 5.0, cap: float = 100.0) -> None:
        self.ratio = ratio
        self.floor = floor
        self.cap = cap
        self.tokens = cap / 2
        self._last = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.cap, self.tokens + (now - self._last) * self.floor)
        self._last = now

    def on_request(self) -> None:
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def try_spend(self) -> bool:
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
