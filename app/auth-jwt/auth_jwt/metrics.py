"""auth-jwt's domain metrics (RED metrics come from edgelib; names: doc/observability.md)."""

from __future__ import annotations

from prometheus_client import Counter

from auth_jwt.sessions.exceptions import (
    ConcurrentLogin,
    CredentialCheckUnavailable,
    InvalidCredentials,
    LoginBusy,
    LoginLocked,
)
from edgelib.problems import Problem

TOKEN_KINDS = ("access", "refresh")
#: Why a login failed; a bounded set (never the username or address).
FAILURE_REASONS = (
    "bad_credentials",
    "locked",
    "rate_limited",
    "concurrent",
    "unavailable",
    "other",
)

TOKENS_ISSUED = Counter(
    "edge_auth_jwt_tokens_issued",
    "Tokens issued, by kind (access, refresh), at login and at refresh.",
    ["kind"],
)
FAILED_LOGINS = Counter(
    "edge_auth_jwt_failed_logins",
    "Logins refused, by reason (bad_credentials, locked, rate_limited, concurrent, "
    "unavailable, other).",
    ["reason"],
)
for _kind in TOKEN_KINDS:
    TOKENS_ISSUED.labels(_kind)
for _reason in FAILURE_REASONS:
    FAILED_LOGINS.labels(_reason)


def failure_reason(exc: BaseException) -> str:
    """The ``reason`` label of a failed login's error."""
    if isinstance(exc, InvalidCredentials):
        return "bad_credentials"
    if isinstance(exc, LoginLocked):
        return "locked"
    if isinstance(exc, ConcurrentLogin):
        return "concurrent"
    if isinstance(exc, CredentialCheckUnavailable | LoginBusy):
        return "unavailable"
    if isinstance(exc, Problem) and exc.status_code == 429:
        return "rate_limited"
    return "other"
