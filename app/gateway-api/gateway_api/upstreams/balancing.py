"""Load-balancing policies: choose one instance from a pool's eligible instances.

Each policy keeps its own state per pool. All work on the instances that are eligible
right now (healthy, circuit not open, not yet tried for this request).

Adding a policy is one class (``name``, ``summary``, ``choose``) and one entry in
:data:`POLICIES`: the route table accepts its name from there, and the gateway's doc
lists the policies as :func:`describe_policies` renders them (a test compares them).
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Final, Protocol

if TYPE_CHECKING:
    from gateway_api.upstreams.pools import Instance


class Balancer(Protocol):
    #: What a route's ``balancing`` names it by.
    name: ClassVar[str]
    #: How the gateway's doc describes it, after the name ("" when the name says it).
    summary: ClassVar[str]

    def choose(
        self, pool: Sequence[Instance], eligible: Sequence[Instance], key: str | None
    ) -> Instance:
        """Pick from ``eligible`` (never empty); ``pool`` is every instance, eligible or not."""
        ...


class RoundRobin:
    name: ClassVar[str] = "round_robin"
    summary: ClassVar[str] = ""

    def __init__(self) -> None:
        self._next = 0

    def choose(
        self, pool: Sequence[Instance], eligible: Sequence[Instance], key: str | None
    ) -> Instance:
        self._next += 1
        return eligible[self._next % len(eligible)]


class SmoothWeightedRoundRobin:
    """nginx's smooth weighted round robin: 3:1 weights give a, a, b, a, spread out."""

    name: ClassVar[str] = "weighted_round_robin"
    summary: ClassVar[str] = "nginx's smooth WRR"

    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def choose(
        self, pool: Sequence[Instance], eligible: Sequence[Instance], key: str | None
    ) -> Instance:
        total = 0
        best: Instance | None = None
        best_weight = 0
        for inst in eligible:
            weight = inst.spec.weight
            current = self._current.get(inst.spec.id, 0) + weight
            self._current[inst.spec.id] = current
            total += weight
            if best is None or current > best_weight:
                best, best_weight = inst, current
        assert best is not None
        self._current[best.spec.id] = best_weight - total
        return best


class Random:
    name: ClassVar[str] = "random"
    summary: ClassVar[str] = ""

    def __init__(self) -> None:
        self._rng = random.Random()

    def choose(
        self, pool: Sequence[Instance], eligible: Sequence[Instance], key: str | None
    ) -> Instance:
        return self._rng.choice(eligible)


def _hash(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


class ConsistentHash:
    """A hash ring with virtual nodes; a key stays on its instance while that one is eligible.

    When the key's instance is not eligible, the next instance on the ring takes it, so
    only that instance's keys move.
    """

    VNODES = 160

    name: ClassVar[str] = "consistent_hash"
    summary: ClassVar[str] = "on the user id, else the client address"

    def __init__(self) -> None:
        self._ring_for: tuple[tuple[str, int], ...] = ()
        self._points: list[int] = []
        self._owners: list[str] = []
        self._fallback = RoundRobin()

    def _build(self, instances: Sequence[Instance]) -> None:
        # Rebuilt when a member joins, leaves or changes weight; every other instance
        # keeps its points, so only the changed instance's keys move.
        ids = tuple(sorted((i.spec.id, i.spec.weight) for i in instances))
        if ids == self._ring_for:
            return
        ring = sorted(
            (_hash(f"{inst.spec.id}#{v}"), inst.spec.id)
            for inst in instances
            for v in range(self.VNODES * inst.spec.weight)
        )
        self._points = [p for p, _ in ring]
        self._owners = [o for _, o in ring]
        self._ring_for = ids

    def choose(
        self, pool: Sequence[Instance], eligible: Sequence[Instance], key: str | None
    ) -> Instance:
        if key is None:
            return self._fallback.choose(pool, eligible, key)
        self._build(pool)
        by_id = {i.spec.id: i for i in eligible}
        start = bisect.bisect(self._points, _hash(key)) % len(self._points)
        for offset in range(len(self._owners)):
            owner = self._owners[(start + offset) % len(self._owners)]
            if owner in by_id:
                return by_id[owner]
        return eligible[0]


class LeastInFlight:
    """Power of two choices: sample two, keep the one with fewer requests in flight."""

    name: ClassVar[str] = "least_in_flight"
    summary: ClassVar[str] = "power of two choices"

    def __init__(self) -> None:
        self._rng = random.Random()

    def choose(
        self, pool: Sequence[Instance], eligible: Sequence[Instance], key: str | None
    ) -> Instance:
        if len(eligible) == 1:
            return eligible[0]
        a, b = self._rng.sample(list(eligible), 2)
        if a.in_flight == b.in_flight:
            return a if a.served <= b.served else b
        return a if a.in_flight < b.in_flight else b


#: Every policy by name: the one place a new policy is registered.
POLICIES: Final[dict[str, type[Balancer]]] = {
    policy.name: policy
    for policy in (RoundRobin, SmoothWeightedRoundRobin, Random, ConsistentHash, LeastInFlight)
}


def describe_policies() -> str:
    """The policies as doc/services/gateway-api.md lists them (its ``balancing`` row)."""
    return ", ".join(
        f"`{name}` ({policy.summary})" if policy.summary else f"`{name}`"
        for name, policy in POLICIES.items()
    )
