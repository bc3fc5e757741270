"""auth-rbac and the gateway share one enforcer (edgelib.policy) and decide exactly as pycasbin.

The policy is Casbin's own ``examples/rbac_with_domains_policy.csv`` (written out below)
plus edge cases. Every (subject, domain, object, action) combination is asked of
auth-rbac's :class:`PolicySnapshot`, of the gateway's :class:`Authorizer` (its decision
path, cache included) and of pycasbin's stock ``Enforcer``: all three must agree.
"""

from __future__ import annotations

import itertools

import casbin
import pytest

from auth_rbac.policy.enforcer import PolicySnapshot, model_text
from edgelib import policy
from gateway_api.config import AuthzSettings
from gateway_api.security.authz import Authorizer

#: casbin/examples/rbac_with_domains_policy.csv
CASBIN_EXAMPLE = [
    ["p", "admin", "domain1", "data1", "read"],
    ["p", "admin", "domain1", "data1", "write"],
    ["p", "admin", "domain2", "data2", "read"],
    ["p", "admin", "domain2", "data2", "write"],
    ["g", "alice", "admin", "domain1"],
    ["g", "bob", "admin", "domain2"],
]

EDGE_CASES = [
    # A chain of roles in one domain: carol -> lead -> admin (domain1 only).
    ["g", "carol", "lead", "domain1"],
    ["g", "lead", "admin", "domain1"],
    # The model matches with ==: a '*' or 'data*' in a rule is a literal name, not a pattern.
    ["p", "admin", "domain1", "data*", "read"],
    ["p", "wild", "*", "*", "*"],
    ["g", "dave", "wild", "domain1"],
    # A role held in domain2 only: asking in domain1 must not see it.
    ["g", "erin", "admin", "domain2"],
    # A direct grant to a user, and a repeated rule.
    ["p", "frank", "domain1", "data2", "read"],
    ["p", "frank", "domain1", "data2", "read"],
    # The platform's own domain.
    ["p", "reader", "default", "config", "read"],
    ["g", "u-1", "reader", "default"],
]


def _deep_chain(hops: int) -> list[list[str]]:
    """deep0 -> deep1 -> ... -> deep{hops}, which alone holds a permission."""
    rules = [["g", f"deep{i}", f"deep{i + 1}", "domain3"] for i in range(hops)]
    return [*rules, ["p", f"deep{hops}", "domain3", "data3", "read"]]


def _reference(rules: list[list[str]]) -> casbin.Enforcer:
    enforcer = casbin.Enforcer(casbin.Enforcer.new_model(text=model_text()))
    for rule in rules:
        if rule[0] == "p":
            enforcer.add_policy(*rule[1:])
        else:
            enforcer.add_grouping_policy(*rule[1:])
    return enforcer


def _questions(rules: list[list[str]]) -> list[tuple[str, str, str, str]]:
    names = {v for rule in rules for v in rule[1:]} | {"nobody", ""}
    subjects = sorted(names)
    domains = sorted({r[2] for r in rules if r[0] == "p"} | {r[3] for r in rules if r[0] == "g"})
    objects = sorted({r[3] for r in rules if r[0] == "p"} | {"data9"})
    actions = sorted({r[4] for r in rules if r[0] == "p"} | {"delete"})
    return list(itertools.product(subjects, [*domains, "domain9"], objects, actions))


async def _gateway_decisions(
    rules: list[list[str]], questions: list[tuple[str, str, str, str]]
) -> dict[tuple[str, str, str, str], bool]:
    decided: dict[tuple[str, str, str, str], bool] = {}
    for domain in sorted({q[1] for q in questions}):
        authorizer = Authorizer(None, settings=AuthzSettings(authz_domain=domain))
        assert await authorizer.install({"version": 1, "model": model_text(), "rules": rules})
        for sub, dom, obj, act in questions:
            if dom == domain:
                # Twice: the first decision runs Casbin, the second comes from the cache.
                first = authorizer.allowed(sub, obj, act)
                assert authorizer.allowed(sub, obj, act) == first
                decided[(sub, dom, obj, act)] = first
    return decided


@pytest.mark.parametrize(
    "rules",
    [
        pytest.param(CASBIN_EXAMPLE, id="casbin-example"),
        pytest.param(CASBIN_EXAMPLE + EDGE_CASES, id="edge-cases"),
        pytest.param(_deep_chain(8), id="chain-8-hops"),
        pytest.param(_deep_chain(9), id="chain-9-hops"),
        pytest.param(_deep_chain(10), id="chain-10-hops"),
        pytest.param(_deep_chain(12), id="chain-12-hops"),
    ],
)
async def test_auth_rbac_gateway_and_pycasbin_decide_identically(rules: list[list[str]]) -> None:
    questions = _questions(rules)
    reference = _reference(rules)
    rbac = PolicySnapshot.build(1, rules)
    gateway = await _gateway_decisions(rules, questions)
    mismatches = [
        (q, expected, rbac.enforce(*q), gateway[q])
        for q in questions
        if not (expected := bool(reference.enforce(*q))) == rbac.enforce(*q) == gateway[q]
    ]
    assert mismatches == [], mismatches[:10]
    assert any(gateway.values())  # the policy grants something: not a vacuous comparison


async def test_the_casbin_example_grants_and_denies_as_documented() -> None:
    rbac = PolicySnapshot.build(1, CASBIN_EXAMPLE + EDGE_CASES)
    allowed = [
        ("alice", "domain1", "data1", "read"),
        ("alice", "domain1", "data1", "write"),
        ("bob", "domain2", "data2", "write"),
        ("carol", "domain1", "data1", "read"),  # two hops: carol -> lead -> admin
        ("frank", "domain1", "data2", "read"),
        ("u-1", "default", "config", "read"),
    ]
    denied = [
        ("alice", "domain2", "data2", "read"),  # admin in domain1 only
        ("bob", "domain1", "data1", "read"),
        ("erin", "domain1", "data1", "read"),  # admin in domain2 only
        ("carol", "domain2", "data2", "read"),
        ("alice", "domain1", "data2", "read"),  # default deny
        ("alice", "domain1", "data1", "delete"),
        ("alice", "domain1", "dataX", "read"),  # 'data*' is a literal, not a pattern
        ("dave", "domain1", "data1", "read"),  # '*' is a literal too
        ("nobody", "domain1", "data1", "read"),
        ("admin", "domain9", "data1", "read"),
    ]
    for question in allowed:
        assert rbac.enforce(*question), question
    for question in denied:
        assert not rbac.enforce(*question), question
    assert rbac.enforce("alice", "domain1", "data*", "read")
    assert rbac.enforce("dave", "*", "*", "*") is False  # dave is 'wild' only in domain1
    assert rbac.enforce("wild", "*", "*", "*")


def test_malformed_rules_grant_nothing() -> None:
    enforcer = policy.build_enforcer(
        policy.MODEL_TEXT,
        [
            ["p", "eve", "domain1", "data1"],  # one value short
            ["p", "eve", "domain1", "data1", "read", "extra"],
            ["x", "eve", "domain1", "data1", "read"],  # no such rule type
            ["g2", "eve", "admin", "domain1"],
            ["g", "eve"],
            ["p"],
            *CASBIN_EXAMPLE,
        ],
    )
    assert not enforcer.enforce("eve", "domain1", "data1", "read")
    assert enforcer.enforce("alice", "domain1", "data1", "read")


def test_both_services_use_the_one_model_and_builder() -> None:
    import auth_rbac.policy.enforcer as rbac_enforcer
    import gateway_api.security.authz as gateway_authz

    assert model_text() == policy.MODEL_TEXT
    assert rbac_enforcer.build_enforcer is policy.build_enforcer
    assert gateway_authz.build_enforcer is policy.build_enforcer
    assert not hasattr(gateway_authz, "DomainRoles")
    assert not hasattr(rbac_enforcer, "DomainRoles")
