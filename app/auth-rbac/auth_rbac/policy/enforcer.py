"""Casbin, loaded from a list of rules: one immutable snapshot per policy version.

The model, the role manager and the enforcer builder are :mod:`edgelib.policy`'s, the
same the gateway uses, so both decide alike. A snapshot is never changed after it is
built; a policy change builds a new one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgelib.policy import DEFAULT_DOMAIN, MODEL_TEXT, build_enforcer

__all__ = ["DEFAULT_DOMAIN", "PolicySnapshot", "Rule", "model_text"]

#: One stored rule: ``("p", sub, dom, obj, act)`` or ``("g", user, role, dom)``.
Rule = tuple[str, ...]


def model_text() -> str:
    """The Casbin model auth-rbac enforces (also served to the gateway)."""
    return MODEL_TEXT


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
