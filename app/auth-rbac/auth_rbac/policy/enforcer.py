"""Casbin, loaded from a list of rules: one immutable snapshot per policy version.

Two departures from Casbin's defaults, neither of which changes a decision:

- ``FastEnforcer`` keyed on (domain, object) only scans the rules of the requested
  domain and object, instead of every rule;
- :class:`DomainRoles` replaces pycasbin's default domain role manager, which builds
  each domain's role graph in quadratic time on first use (minutes at 10,000
  assignments). Ours is two dictionaries per domain.

A snapshot is never changed after it is built; a policy change builds a new one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import casbin
from casbin.model import FastModel
from casbin.rbac import RoleManager
from casbin.util.log import disabled_logging

MODEL_PATH = Path(__file__).parents[1] / "rbac_model.conf"
DEFAULT_DOMAIN = "default"
#: Role hops Casbin follows (its default ``max_hierarchy_level``).
MAX_ROLE_DEPTH = 10

#: One stored rule: ``("p", sub, dom, obj, act)`` or ``("g", user, role, dom)``.
Rule = tuple[str, ...]


@cache
def model_text() -> str:
    """The Casbin model auth-rbac enforces (also served to the gateway)."""
    return MODEL_PATH.read_text()


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
        pass


def build_enforcer(text: str, rules: Iterable[Sequence[str]]) -> Any:
    """A Casbin enforcer for ``text`` holding ``rules`` (``[ptype, v0, v1, ...]``)."""
    # Casbin logs the model at INFO while building, and every denial at WARNING.
    disabled_logging()
    model = FastModel([1, 2])
    model.load_model_from_text(text)
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
        if key in seen:
            continue
        seen.add(key)
        ptype, values = key[0], list(key[1:])
        # Appending to the assertion directly: Model.add_policy recounts a FastPolicy on
        # every call, which is quadratic over a full load.
        model[ptype[0]][ptype].policy.append(values)
    enforcer.build_role_links()
    return enforcer


@dataclass(frozen=True)
class PolicySnapshot:
    """One policy version: its rules and the enforcer built from them."""

    version: int
    rules: tuple[Rule, ...]
    enforcer: Any = field(repr=False)
    built_ms: float = 0.0

    @classmethod
    def build(cls, version: int, rules: Iterable[Sequence[str]]) -> PolicySnapshot:
        started = time.perf_counter()
        frozen = tuple(tuple(r) for r in rules)
        enforcer = build_enforcer(model_text(), frozen)
        return cls(version, frozen, enforcer, (time.perf_counter() - started) * 1000)

    def enforce(self, sub: str, dom: str, obj: str, act: str) -> bool:
        return bool(self.enforcer.enforce(sub, dom, obj, act))

    def roles_for(self, user: str, dom: str) -> list[str]:
        """Roles assigned to ``user`` directly in ``dom``."""
        return list(self.enforcer.get_role_manager().get_roles(user, dom))

    def implicit_roles_for(self, user: str, dom: str) -> list[str]:
        """Every role ``user`` holds in ``dom``, directly or through other roles."""
        return sorted(self.enforcer.get_implicit_roles_for_user(user, dom))

    def members_of(self, role: str, dom: str) -> list[str]:
        """Subjects assigned ``role`` directly in ``dom``."""
        return list(self.enforcer.get_role_manager().get_users(role, dom))

    def permissions_of(self, sub: str, dom: str) -> list[tuple[str, str]]:
        """(object, action) pairs granted to ``sub`` itself in ``dom``."""
        return sorted(
            {(r[3], r[4]) for r in self.rules if r[0] == "p" and r[1] == sub and r[2] == dom}
        )

    def effective_permissions(self, user: str, dom: str) -> list[tuple[str, str, str]]:
        """(object, action, granted-to) for everything ``user`` may do in ``dom``."""
        subjects = [user, *self.implicit_roles_for(user, dom)]
        wanted = set(subjects)
        found = {
            (r[3], r[4], r[1]) for r in self.rules if r[0] == "p" and r[2] == dom and r[1] in wanted
        }
        return sorted(found)
