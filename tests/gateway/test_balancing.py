"""Balancing policies and circuit breakers, on plain Instance objects."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gateway_api.routing.schema import route_table_schema
from gateway_api.routing.table import BALANCING_POLICIES
from gateway_api.topology import InstanceSpec
from gateway_api.upstreams.balancing import (
    POLICIES,
    ConsistentHash,
    LeastInFlight,
    SmoothWeightedRoundRobin,
    describe_policies,
)
from gateway_api.upstreams.pools import CircuitBreaker, Instance, Pool, RetryBudget


def pool(*weights: int, policy_instances: int | None = None) -> Pool:
    instances = [
        Instance(InstanceSpec("svc", "east", f"http://127.0.0.1:{9000 + i}", w, 9000 + i))
        for i, w in enumerate(weights)
    ]
    return Pool("svc", "east", instances)


def test_smooth_weighted_round_robin_matches_nginx_sequence() -> None:
    p = pool(5, 1, 1)
    seq = [p.choose("weighted_round_robin").spec.port for _ in range(7)]  # type: ignore[union-attr]
    # nginx's documented example: weights a=5, b=1, c=1 give a a b a c a a.
    assert seq == [9000, 9000, 9001, 9000, 9002, 9000, 9000]


def test_weighted_split_is_exact_over_whole_cycles() -> None:
    p = pool(3, 1)
    counts = Counter(p.choose("weighted_round_robin").spec.port for _ in range(4000))  # type: ignore[union-attr]
    assert counts == {9000: 3000, 9001: 1000}


def test_round_robin_skips_unhealthy_and_excluded() -> None:
    p = pool(1, 1, 1)
    p.instances[1].healthy = False
    seen = {p.choose("round_robin").spec.port for _ in range(10)}  # type: ignore[union-attr]
    assert seen == {9000, 9002}
    only = p.choose("round_robin", exclude={p.instances[0].url})
    assert only is p.instances[2]
    p.instances[0].healthy = p.instances[2].healthy = False
    assert p.choose("round_robin") is None


def test_consistent_hash_keeps_each_key_on_one_instance() -> None:
    p = pool(1, 1, 1)
    owners = {f"user-{i}": p.choose("consistent_hash", f"user-{i}") for i in range(300)}
    for _ in range(3):
        for key, owner in owners.items():
            assert p.choose("consistent_hash", key) is owner
    spread = Counter(o.spec.port for o in owners.values())  # type: ignore[union-attr]
    assert len(spread) == 3
    assert min(spread.values()) > 50


def test_consistent_hash_moves_only_the_failed_instances_keys() -> None:
    p = pool(1, 1, 1)
    before = {f"u{i}": p.choose("consistent_hash", f"u{i}") for i in range(300)}
    p.instances[0].healthy = False
    after = {k: p.choose("consistent_hash", k) for k in before}
    moved = [k for k in before if before[k] is not after[k]]
    assert moved
    assert all(before[k] is p.instances[0] for k in moved)
    p.instances[0].healthy = True
    assert {k: p.choose("consistent_hash", k) for k in before} == before


def test_consistent_hash_ring_is_independent_of_instance_order() -> None:
    a, b = ConsistentHash(), ConsistentHash()
    p = pool(1, 1, 1)
    reversed_instances = list(reversed(p.instances))
    for i in range(100):
        key = f"k{i}"
        assert (
            a.choose(p.instances, p.instances, key).spec.id
            == b.choose(reversed_instances, reversed_instances, key).spec.id
        )


def test_least_in_flight_prefers_the_idle_instance() -> None:
    p = pool(1, 1)
    p.instances[0].in_flight = 10
    chooser = LeastInFlight()
    picks = Counter(chooser.choose(p.instances, p.instances, None).spec.port for _ in range(100))
    assert picks == {9001: 100}


def test_swrr_with_single_instance_always_returns_it() -> None:
    p = pool(4)
    chooser = SmoothWeightedRoundRobin()
    assert {chooser.choose(p.instances, p.instances, None).spec.port for _ in range(5)} == {9000}


def test_breaker_opens_after_threshold_and_half_opens_for_one_trial() -> None:
    b = CircuitBreaker(threshold=3, base_cool_down=1.0, cool_down=1.0)
    for _ in range(3):
        b.on_failure(100.0)
    assert b.state == "open"
    assert not b.available(100.5)
    assert b.available(101.1)
    b.on_dispatch(101.1)
    assert b.state == "half_open"
    assert not b.available(101.2)  # only one trial at a time
    b.on_failure(101.3)
    assert b.state == "open"
    assert b.cool_down == 2.0
    assert b.available(103.4)
    b.on_dispatch(103.4)
    b.on_success()
    assert b.state == "closed"
    assert b.cool_down == 1.0


def test_open_breaker_takes_instance_out_of_rotation() -> None:
    p = pool(1, 1)
    for _ in range(3):
        p.instances[0].breaker.on_failure(0.0)
    p.instances[0].breaker.opened_at = 1e12  # far in the future: stays open
    assert all(p.choose("round_robin") is p.instances[1] for _ in range(4))


def test_retry_budget_allows_a_share_of_requests() -> None:
    budget = RetryBudget(ratio=0.2, floor=0.0, cap=100.0)
    budget.tokens = 0
    for _ in range(11):  # 11 x 0.2 = 2.2 tokens
        budget.on_request()
    assert budget.try_spend()
    assert budget.try_spend()
    assert not budget.try_spend()


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_every_policy_only_returns_eligible_instances(policy: str) -> None:
    p = pool(1, 2, 3)
    p.instances[1].healthy = False
    for i in range(50):
        chosen = p.choose(policy, f"k{i}")
        assert chosen is not None
        assert chosen is not p.instances[1]


ROOT = Path(__file__).parents[2]


def test_policies_are_registered_once_and_known_to_the_route_table() -> None:
    assert set(POLICIES) == BALANCING_POLICIES
    for name, policy in POLICIES.items():
        assert policy.name == name
        assert policy().choose is not None  # constructed with no argument, as pools do


def test_the_route_schema_offers_the_registered_policies() -> None:
    # sv-config validates route releases against this schema before the gateway sees them.
    schema = route_table_schema(["svc"])
    item = schema["properties"]["routes"]["items"]["properties"]
    assert item["balancing"] == {"enum": sorted(POLICIES)}


def test_the_gateway_doc_lists_the_registered_policies() -> None:
    # The `balancing` row of the route options table is describe_policies(), exactly:
    # a policy added to (or dropped from) the registry must be documented here.
    doc = (ROOT / "doc/services/gateway-api.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| `balancing` |")]
    assert len(rows) == 1, "doc/services/gateway-api.md: one `balancing` row"
    listed = rows[0].split("|")[2].strip()
    assert listed == describe_policies(), (
        "doc/services/gateway-api.md is out of date with gateway_api.upstreams.balancing."
        f"POLICIES; its `balancing` row should read: {describe_policies()}"
    )
    # The shipped route table's comment names them too.
    routes = (ROOT / "app/gateway-api/gateway_api/routes.toml").read_text()
    comment = " ".join(line.lstrip("# ") for line in routes.splitlines() if line.startswith("#"))
    for name in POLICIES:
        assert name in comment, f"routes.toml's comment does not name {name}"
