"""Brute-force protection for logins, after Keycloak's brute-force detection.

Failures are counted in the backend (Redis, or in-process locally), so every
instance sees the same counts. Three counters, so that an attacker cannot lock a
user out:

- per account *and* client address: after ``pair_failures`` failures each further
  one makes that pair wait, ``base`` seconds doubling per failure up to ``maximum``.
  A success resets it. Failures from another address never touch the victim's pair;
- per address over any accounts (credential stuffing): the address is locked, the
  lock doubling each time within a day;
- per account over all addresses, a higher ceiling: the account pauses for a short
  fixed ``account_wait``, but not for an address it signed in from lately, so a user
  on their usual address is never held back by a distributed guesser.

A count is forgotten ``window`` seconds after its last failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from auth_jwt.sessions.exceptions import LoginLocked
from edgelib.backends import Backend

STRIKES_TTL = 86400.0
UNKNOWN_ADDRESS = "unknown"


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    pair_failures: int = 5
    base: float = 5.0
    maximum: float = 900.0
    window: float = 900.0
    address_failures: int = 20
    account_failures: int = 50
    account_wait: float = 60.0
    known_address_ttl: float = 30 * 86400.0


class LoginGuard:
    def __init__(self, backend: Backend, policy: LockoutPolicy, *, prefix: str = "auth:login"):
        self.backend = backend
        self.policy = policy
        self.prefix = prefix

    def _key(self, what: str, account: str, address: str | None = None) -> str:
        if address is None:
            return f"{self.prefix}:{what}:{account}"
        return f"{self.prefix}:{what}:{account}@{address}"

    @staticmethod
    def _account(username: str) -> str:
        return username.strip().lower()

    async def _wait(self, key: str) -> float:
        return await self.backend.ttl(key) or 0.0

    async def check(self, username: str, address: str | None) -> None:
        """Raise :class:`LoginLocked` while this account and address must wait."""
        account, where = self._account(username), address or UNKNOWN_ADDRESS
        wait = await self._wait(self._key("wait", account, where))
        if address:
            wait = max(wait, await self._wait(self._key("lock-address", address)))
        account_wait = await self._wait(self._key("pause", account))
        if account_wait and not await self._known(account, address):
            wait = max(wait, account_wait)
        if wait:
            raise LoginLocked(max(1, math.ceil(wait)))

    async def _known(self, account: str, address: str | None) -> bool:
        return address is not None and await self.backend.exists(
            self._key("known", account, address)
        )

    async def failed(self, username: str, address: str | None) -> None:
        """Count a failure; raise :class:`LoginLocked` when it starts a wait."""
        policy = self.policy
        account, where = self._account(username), address or UNKNOWN_ADDRESS
        wait = 0.0
        # The count lives ``window`` past its *last* failure (Keycloak's failure reset
        # time), so a patient guesser does not start again from the smallest wait.
        pair = self._key("fail", account, where)
        failures = await self.backend.incr(pair)
        await self.backend.set(pair, str(failures).encode(), ttl=policy.window)
        if failures >= policy.pair_failures:
            wait = min(policy.maximum, policy.base * 2.0 ** (failures - policy.pair_failures))
            await self.backend.set(self._key("wait", account, where), b"1", ttl=wait)
        if address:
            wait = max(wait, await self._count_address(address))
        if await self.backend.incr(self._key("fail", account), ttl=policy.window) >= (
            policy.account_failures
        ):
            await self.backend.set(self._key("pause", account), b"1", ttl=policy.account_wait)
            if not await self._known(account, address):
                wait = max(wait, policy.account_wait)
        if wait:
            raise LoginLocked(max(1, math.ceil(wait)))

    async def _count_address(self, address: str) -> float:
        """Count a failure from ``address``; the lock it starts (0.0 for none)."""
        policy = self.policy
        failures = await self.backend.incr(self._key("fail-address", address), ttl=policy.window)
        if failures < policy.address_failures:
            return 0.0
        strikes = await self.backend.incr(self._key("strikes-address", address), ttl=STRIKES_TTL)
        duration = min(policy.maximum, policy.base * 2.0 ** (strikes - 1))
        await self.backend.set(self._key("lock-address", address), b"1", ttl=duration)
        await self.backend.delete(self._key("fail-address", address))
        return duration

    async def succeeded(self, username: str, address: str | None) -> None:
        """Reset this pair's failures, and remember the address as one the user signs in from."""
        account, where = self._account(username), address or UNKNOWN_ADDRESS
        await self.backend.delete(self._key("fail", account, where))
        if address:
            await self.backend.set(
                self._key("known", account, address), b"1", ttl=self.policy.known_address_ttl
            )
