"""The authorization policy's machinery, shared by auth-rbac and the gateway so both decide alike.

auth-rbac enforces :data:`MODEL_TEXT` and serves it to the gateway with the rules
(``GET /internal/policy``); both build their enforcer with :func:`build_enforcer`.
Two departures from Casbin's defaults, neither of which changes a decision:

- ``FastEnforcer`` keyed on (domain, object) only scans the rules of the requested
  domain and object, instead of every rule;
- :class:`DomainRoles` replaces pycasbin's default domain role manager, which builds
  each domain's role graph in quadratic time on first use (minutes at 10,000
  assignments). Ours is two dictionaries per domain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import casbin
from casbin.model import FastModel
from casbin.rbac import RoleManager
from casbin.util.log import disabled_logging

#: RBAC with domains, exactly Casbin's own example (examples/rbac_with_domains_model.conf).
#: The domain is the tenant; the platform's own permissions live in :data:`DEFAULT_DOMAIN`.
MODEL_TEXT = """\
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.dom == p.dom && r.obj == p.obj && r.act == p.act && g(r.sub, p.sub, r.dom)
"""
DEFAULT_DOMAIN = "default"
#: Role hops Casbin follows (its default ``max_hierarchy_level``).
MAX_ROLE_DEPTH = 10


class DomainRoles(RoleManager):  # type: ignore[misc]
    """Casbin role manager for ``g = _, _, _``: exact names, per-domain adjacency sets."""

    def __init__(self, max_depth: int = MAX_ROLE_DEPTH) -> None:
        self.max_depth = max_depth
        # Read by Casbin's implicit-permission helpers; we never match patterns.
        self.matching_func = None
        self.domain_matching_func = None
        self._roles: dict[str, dict[str, set[str]]] = {}
        self._users: dict[str, dict[str, set[str]]] = {}

    @staticmethod
    def _domain(domain: Sequence[str]) -> str:
        if len(domain) > 1:
            raise RuntimeError("error: domain should be 1 parameter")
        return domain[0] if domain else ""

    def clear(self) -> None:
        self._roles.clear()
        self._users.clear()

    def add_link(self, name1: str, name2: str, *domain: str) -> None:
        dom = self._domain(domain)
        self._roles.setdefault(dom, {}).setdefault(name1, set()).add(name2)
        self._users.setdefault(dom, {}).setdefault(name2, set()).add(name1)

    def delete_link(self, name1: str, name2: str, *domain: str) -> None:
        dom = self._domain(domain)
        self._roles.get(dom, {}).get(name1, set()).discard(name2)
        self._users.get(dom, {}).get(name2, set()).discard(name1)

    def has_link(self, name1: str, name2: str, *domain: str) -> bool:
        """Whether ``name1`` reaches ``name2`` within Casbin's hop limit, in that domain."""
        if name1 == name2:
            return True
        graph = self._roles.get(self._domain(domain))
        if not graph:
            return False
        seen = {name1}
        frontier = {name1}
        for _ in range(self.max_depth - 1):
            step: set[str] = set()
            for name in frontier:
                step |= graph.get(name, set())
            if name2 in step:
                return True
            frontier = step - seen
            if not frontier:
                return False
            seen |= frontier
        return False

    def get_roles(self, name: str, *domain: str) -> list[str]:
        return sorted(self._roles.get(self._domain(domain), {}).get(name, ()))

    def get_users(self, name: str, *domain: str) -> list[str]:
        return sorted(self._users.get(self._domain(domain), {}).get(name, ()))

    def print_roles(self) -> None:
        """Casbin's debug dump of the role graph; the graph is logged nowhere on purpose."""


def build_enforcer(model_text: str, rules: Iterable[Sequence[str]]) -> Any:
    """A Casbin enforcer for ``model_text`` holding ``rules`` (``[ptype, v0, v1, ...]``).

    Repeated rules count once; a rule whose type the model does not define, or with the
    wrong number of values, is skipped, so a malformed row can never grant anything.
    """
    # Casbin logs the model at INFO while building, and every denial at WARNING.
    disabled_logging()
    model = FastModel([1, 2])
    model.load_model_from_text(model_text)
    if model["r"]["r"].tokens[:3] != ["r_sub", "r_dom", "r_obj"] or model["p"]["p"].tokens[:3] != [
        "p_sub",
        "p_dom",
        "p_obj",
    ]:
        raise ValueError("the model must start r and p with sub, dom, obj")
    enforcer = casbin.FastEnforcer(model, cache_key_order=[1, 2])
    enforcer.set_role_manager(DomainRoles())
    seen: set[tuple[str, ...]] = set()
    for rule in rules:
        key = tuple(rule)
        if len(key) < 2 or key in seen:
            continue
        ptype = key[0]
        section = model.model.get(ptype[:1])
        if not section or ptype not in section or len(key) - 1 != len(section[ptype].tokens):
            continue
        seen.add(key)
        # Appending to the assertion directly: Model.add_policy recounts a FastPolicy on
        # every call, which is quadratic over a full load.
        section[ptype].policy.append(list(key[1:]))
    enforcer.build_role_links()
    return enforcer
