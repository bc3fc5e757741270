"""Errors of the tenants domain, as RFC 9457 problems."""

from __future__ import annotations

from edgelib.problems import Conflict, Forbidden, NotFound


class TenantNotFound(NotFound):
    type_slug, title = "tenant-not-found", "Tenant not found"

    def __init__(self, tenant: str) -> None:
        super().__init__(f"There is no tenant {tenant!r}.", tenant=tenant)


class TenantExists(Conflict):
    type_slug, title = "tenant-exists", "Tenant already exists"

    def __init__(self, tenant: str) -> None:
        super().__init__(f"Tenant {tenant!r} already exists (or is reserved).", tenant=tenant)


class MemberNotFound(NotFound):
    type_slug, title = "member-not-found", "Not a member"

    def __init__(self, tenant: str, user: str) -> None:
        super().__init__(f"{user} is not a member of tenant {tenant!r}.", tenant=tenant)


class OutsideTenant(Forbidden):
    """A tenant's caller reached for another tenant's domain."""

    type_slug, title = "outside-tenant", "Outside your tenant"

    def __init__(self, dom: str) -> None:
        super().__init__(f"Your active tenant cannot act in domain {dom!r}.", dom=dom)


class PlatformOnly(Forbidden):
    type_slug, title = "platform-admin-only", "Platform administrators only"

    def __init__(self) -> None:
        super().__init__(
            "Creating, listing and changing tenants is for the platform's administrators "
            "(the default tenant)."
        )
