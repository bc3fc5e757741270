"""Errors of the policy domain, as RFC 9457 problems."""

from __future__ import annotations

from edgelib.problems import Conflict, Forbidden, NotFound


class RoleNotFound(NotFound):
    type_slug, title = "role-not-found", "Role not found"

    def __init__(self, name: str, domain: str) -> None:
        super().__init__(
            f"Role {name!r} does not exist in domain {domain!r}; create it with "
            "POST /api/v1/rbac/roles first.",
            role=name,
            dom=domain,
        )


class RoleExists(Conflict):
    type_slug, title = "role-exists", "Role already exists"

    def __init__(self, name: str, domain: str) -> None:
        super().__init__(
            f"Role {name!r} already exists in domain {domain!r}.", role=name, dom=domain
        )


class BuiltinRole(Conflict):
    type_slug, title = "builtin-role", "Built-in role"

    def __init__(self, name: str) -> None:
        super().__init__(f"Role {name!r} is built in and cannot be deleted.", role=name)


class RuleNotFound(NotFound):
    type_slug, title = "rule-not-found", "No such rule"


class ProtectedRule(Conflict):
    """The change would leave nobody able to administer the policy."""

    type_slug, title = "protected-rule", "Protected rule"


class NotPolicyAdmin(Forbidden):
    type_slug, title = "forbidden", "Forbidden"

    def __init__(self) -> None:
        super().__init__("missing permission rbac:admin")


class RoleNotDelegated(Forbidden):
    """A service asked to assign a role it has not been given to hand out."""

    type_slug, title = "role-not-delegated", "Role not delegated"

    def __init__(self, caller: str, role: str) -> None:
        super().__init__(f"{caller} may not assign the role {role!r}.", role=role)
