"""The gateway's own refusals, as problem+json documents.

Kept apart from the modules that raise them: those are compiled with mypyc
(:mod:`gateway_api.native`), and mypyc does not keep class attributes assigned in a
compiled subclass of a Python class, which is what every Problem subclass is.
"""

from __future__ import annotations

from edgelib.problems import (
    Forbidden,
    Problem,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)


class NotFound(Problem):
    status_code, type_slug, title = 404, "no-route", "No route"


class MethodRefused(Problem):
    status_code, type_slug, title = 405, "method-not-allowed", "Method not allowed"


class BadPath(Problem):
    status_code, type_slug, title = 400, "unsafe-path", "Unsafe path"


class BadRequestBody(Problem):
    status_code, type_slug, title = 400, "bad-request", "Bad request"


class UpgradeRefused(Problem):
    status_code, type_slug, title = 400, "upgrade-refused", "Upgrade refused"


class RevocationsUnavailable(ServiceUnavailable):
    type_slug, title = "revocations-unavailable", "Sessions not verifiable yet"


class BadGateway(Problem):
    status_code, type_slug, title = 502, "bad-gateway", "Bad gateway"


class UpstreamUnreachable(ServiceUnavailable):
    """The connection failed, so nothing was sent: any method may try another instance."""

    type_slug = "upstream-unreachable"


class RateLimitExceeded(TooManyRequests):
    type_slug, title = "rate-limited", "Rate limit exceeded"


class QuotaExceeded(TooManyRequests):
    type_slug, title = "quota-exceeded", "Quota exceeded"


class InvalidAccessToken(Unauthorized):
    type_slug, title = "invalid-token", "Invalid access token"


class SessionRevoked(Unauthorized):
    type_slug, title = "session-revoked", "Session ended"


class PermissionDenied(Forbidden):
    type_slug, title = "permission-denied", "Permission denied"


class PolicyUnavailable(ServiceUnavailable):
    type_slug, title = "policy-unavailable", "Authorization unavailable"
