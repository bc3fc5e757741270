"""Errors of the apps domain: problem+json on the API, RFC 6749 errors at the token endpoint."""

from __future__ import annotations

from edgelib.problems import Forbidden, NotFound


class AppNotFound(NotFound):
    type_slug, title = "app-not-found", "App not found"

    def __init__(self, client_id: str) -> None:
        super().__init__(f"There is no app {client_id!r}.", client_id=client_id)


class OutsideTenant(Forbidden):
    type_slug, title = "outside-tenant", "Outside your tenant"

    def __init__(self, tenant: str) -> None:
        super().__init__(f"Your active tenant cannot act in tenant {tenant!r}.", tenant=tenant)


class TenantUnusable(Forbidden):
    type_slug, title = "tenant-unusable", "Tenant unknown or disabled"

    def __init__(self, tenant: str) -> None:
        super().__init__(f"Tenant {tenant!r} does not exist or is disabled.", tenant=tenant)


class OAuthProblem(Exception):
    """An RFC 6749 §5.2 error: answered as ``{"error": ...}`` JSON, not problem+json."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def invalid_request(description: str) -> OAuthProblem:
    return OAuthProblem("invalid_request", description)


def invalid_client(description: str = "client authentication failed") -> OAuthProblem:
    return OAuthProblem("invalid_client", description, status=401)


def unsupported_grant_type(grant: str) -> OAuthProblem:
    return OAuthProblem(
        "unsupported_grant_type", f"grant_type {grant[:64]!r} is not supported here"
    )


def unauthorized_client(description: str) -> OAuthProblem:
    return OAuthProblem("unauthorized_client", description)
