"""Errors of the quotas domain, as RFC 9457 problems."""

from __future__ import annotations

from edgelib.problems import Forbidden, NotFound


class QuotaNotFound(NotFound):
    type_slug, title = "quota-not-found", "Quota not found"

    def __init__(self, kind: str, tenant: str, target: str) -> None:
        super().__init__(
            f"There is no {kind} quota for {target!r} in tenant {tenant!r}.",
            kind=kind,
            target=target,
        )


class QuotaPlatformOnly(Forbidden):
    type_slug, title = "platform-admin-only", "Platform administrators only"

    def __init__(self) -> None:
        super().__init__(
            "Tenant, route and service quotas are set by the platform's administrators; "
            "a tenant's admin sets its own apps' quotas."
        )
