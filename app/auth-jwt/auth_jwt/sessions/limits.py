"""Request rate limits of the public session endpoints, from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from auth_jwt.config import Settings
from auth_jwt.sessions.lockout import LockoutPolicy
from edgelib.ratelimit import WindowLimit


@dataclass(frozen=True, slots=True)
class AuthLimits:
    login_address: WindowLimit
    refresh_address: WindowLimit
    refresh_account: WindowLimit
    lockout: LockoutPolicy

    @classmethod
    def from_settings(cls, s: Settings) -> AuthLimits:
        return cls(
            login_address=WindowLimit(
                "login-address", s.login_address_limit, s.login_address_window
            ),
            refresh_address=WindowLimit(
                "refresh-address", s.refresh_address_limit, s.refresh_address_window
            ),
            refresh_account=WindowLimit(
                "refresh-account", s.refresh_account_limit, s.refresh_account_window
            ),
            lockout=LockoutPolicy(
                pair_failures=s.lockout_failures,
                base=s.lockout_base,
                maximum=s.lockout_max,
                window=s.lockout_window,
                address_failures=s.lockout_address_failures,
                account_failures=s.lockout_account_failures,
                account_wait=s.lockout_account_wait,
                known_address_ttl=s.lockout_known_address_ttl,
            ),
        )
