"""Errors of the sessions domain, as problem+json."""

from __future__ import annotations

from edgelib.problems import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)


class InvalidCredentials(Unauthorized):
    type_slug, title = "invalid-credentials", "Invalid username or password"


class InvalidRefreshToken(Unauthorized):
    type_slug, title = "invalid-refresh-token", "Invalid refresh token"


class RefreshTokenReused(Unauthorized):
    """A rotated refresh token came back: its session is revoked, and that must stick."""

    type_slug, title = "refresh-token-reused", "Refresh token reused"
    commit_changes = True


class SessionEnded(Unauthorized):
    type_slug, title = "session-ended", "Session ended"


class LoginLocked(TooManyRequests):
    type_slug, title = "login-locked", "Too many failed logins"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many failed logins; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
        )


class ConcurrentLogin(Conflict):
    type_slug, title = "concurrent-login", "Another login of this client type is in progress"


class CredentialCheckUnavailable(ServiceUnavailable):
    type_slug, title = "credential-check-unavailable", "Cannot check credentials now"


class LoginBusy(ServiceUnavailable):
    """The login lane is full (``AUTH_JWT_LOGIN_CONCURRENCY`` running, ``..._QUEUE`` waiting)."""

    type_slug, title = "login-busy", "Too many logins in progress"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many logins in progress; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


class SessionNotFound(NotFound):
    type_slug, title = "session-not-found", "No such session"


class TenantCheckUnavailable(ServiceUnavailable):
    type_slug, title = "tenant-check-unavailable", "Cannot check the tenant now"


class TenantRefused(Forbidden):
    """Not a member of the tenant, or it is disabled or unknown: one answer for all."""

    type_slug, title = "tenant-refused", "Tenant refused"

    def __init__(self, tenant: str) -> None:
        super().__init__(
            f"you cannot sign in to tenant {tenant!r} (not a member, or it is disabled)",
            tenant=tenant,
        )
