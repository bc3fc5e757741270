"""auth-jwt's calls to sv-region (where does a username live) and sv-user (credentials)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from auth_jwt.sessions.exceptions import CredentialCheckUnavailable, InvalidCredentials
from edgelib.client import ServiceCallError, ServiceClient
from edgelib.peers import DirectoryClient, PeerProblem, PeerUnavailable, UnknownUser

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$")


@dataclass(frozen=True, slots=True)
class VerifiedUser:
    id: str
    username: str
    region: str


class UserDirectory:
    """Every region's sv-user, found through sv-region's username directory."""

    def __init__(self, directory: DirectoryClient, users: dict[str, ServiceClient]) -> None:
        self.directory = directory
        self.users = users

    async def region_of(self, username: str) -> str | None:
        """The region holding ``username``, or None when no active user has it."""
        if not USERNAME.match(username):
            return None
        try:
            entry = await self.directory.lookup(username)
        except UnknownUser:
            return None
        except (PeerUnavailable, PeerProblem) as exc:
            raise CredentialCheckUnavailable(exc.detail) from exc
        return entry.region

    def _users(self, region: str) -> ServiceClient:
        client = self.users.get(region)
        if client is None:
            raise CredentialCheckUnavailable(f"no sv-user is configured for region {region!r}")
        return client

    async def verify(self, username: str, password: str) -> VerifiedUser:
        """The account these credentials open, or :class:`InvalidCredentials`."""
        region = await self.region_of(username)
        if region is None:
            raise InvalidCredentials("invalid username or password")
        try:
            response = await self._users(region).post(
                "/internal/credentials/verify", json={"username": username, "password": password}
            )
        except ServiceCallError as exc:
            raise CredentialCheckUnavailable(f"sv-user of {region!r} is not reachable") from exc
        if response.status_code in (401, 404, 422):
            raise InvalidCredentials("invalid username or password")
        if response.status_code != 200:
            raise CredentialCheckUnavailable(
                f"sv-user of {region!r} answered {response.status_code}"
            )
        doc = response.json()
        return VerifiedUser(doc["id"], doc["username"], doc["region"])

    async def create_bootstrap_account(self, region: str, account: dict[str, Any]) -> int:
        """Have ``region``'s sv-user store the bootstrap's account under the id it chose
        (idempotent on that id; 409 when another account holds the name)."""
        try:
            response = await self._users(region).post("/internal/bootstrap-accounts", json=account)
        except ServiceCallError as exc:
            raise CredentialCheckUnavailable(f"sv-user of {region!r} is not reachable") from exc
        return response.status_code
