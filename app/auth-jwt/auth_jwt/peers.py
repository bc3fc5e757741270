"""auth-jwt's calls to sv-region (where does a username live), sv-user (credentials) and
auth-rbac (is a tenant enabled, is a user its member)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from auth_jwt.sessions.exceptions import (
    CredentialCheckUnavailable,
    InvalidCredentials,
    TenantCheckUnavailable,
)
from edgelib.client import ServiceCallError, ServiceClient

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$")


@dataclass(frozen=True, slots=True)
class VerifiedUser:
    id: str
    username: str
    region: str


class UserDirectory:
    """Every region's sv-user, found through sv-region's username directory."""

    def __init__(self, directory: ServiceClient, users: dict[str, ServiceClient]) -> None:
        self.directory = directory
        self.users = users

    async def region_of(self, username: str) -> str | None:
        """The region holding ``username``, or None when nobody has it."""
        entry = await self.entry_of(username)
        return None if entry is None else str(entry["region"])

    async def entry_of(self, username: str) -> dict[str, Any] | None:
        """The directory entry (user id, region) of ``username``, or None."""
        if not USERNAME.match(username):
            return None
        try:
            response = await self.directory.get(f"/internal/directory/usernames/{username.lower()}")
        except ServiceCallError as exc:
            raise CredentialCheckUnavailable("the user directory is not reachable") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise CredentialCheckUnavailable(f"the user directory answered {response.status_code}")
        entry: dict[str, Any] = response.json()
        return entry

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


DEFAULT_TENANT = "default"


@dataclass(frozen=True, slots=True)
class TenantStatus:
    exists: bool
    disabled: bool
    member: bool

    @property
    def usable(self) -> bool:
        """Whether a token may be issued in the tenant (for the user asked about)."""
        return self.exists and not self.disabled and self.member


class TenantDirectory:
    """auth-rbac's tenants, asked before a token is issued in one."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def status(self, tenant: str, user: str | None = None) -> TenantStatus:
        """The tenant's state, and whether ``user`` (when given) is a member."""
        if tenant == DEFAULT_TENANT:
            return TenantStatus(exists=True, disabled=False, member=True)
        target = f"/internal/tenants/{quote(tenant, safe='')}/status"
        try:
            response = await self.client.get(
                target, params=None if user is None else {"user": user}
            )
        except ServiceCallError as exc:
            raise TenantCheckUnavailable("auth-rbac is not reachable") from exc
        if response.status_code == 422:
            return TenantStatus(exists=False, disabled=False, member=False)
        if response.status_code != 200:
            raise TenantCheckUnavailable(f"auth-rbac answered {response.status_code}")
        doc = response.json()
        return TenantStatus(
            exists=bool(doc["exists"]),
            disabled=bool(doc["disabled"]),
            member=user is None or bool(doc["member"]),
        )
