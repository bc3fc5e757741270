"""Which domains a caller may touch: a tenant's caller, its own; the platform's, any."""

from __future__ import annotations

from auth_rbac.policy.enforcer import DEFAULT_DOMAIN
from auth_rbac.tenants.exceptions import OutsideTenant
from edgelib.identity import Identity


def is_platform(identity: Identity) -> bool:
    """Whether the caller acts for the platform itself (the ``default`` tenant)."""
    return identity.tenant == DEFAULT_DOMAIN


def in_scope(identity: Identity, dom: str) -> None:
    """Return when ``identity`` may act in ``dom``; raise ``403 outside-tenant`` otherwise."""
    if not is_platform(identity) and dom != identity.tenant:
        raise OutsideTenant(dom)
