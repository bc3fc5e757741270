"""The bootstrap administrator: an account named ``admin`` exists once the stack is up.

Its password comes from ``EDGE_ADMIN_PASSWORD`` (or ``AUTH_JWT_ADMIN_PASSWORD``). In
the local profile without one, a password is generated and written to
``<var>/admin-password`` (mode 0600). Elsewhere, without one, no admin is created.
The account lives in sv-user like any other; auth-jwt only makes sure it exists,
retrying until sv-region and sv-user answer, and reports ready once it does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path

from auth_jwt.config import Settings
from auth_jwt.peers import UserDirectory
from auth_jwt.sessions.exceptions import CredentialCheckUnavailable
from edgelib.roles import RoleAssignmentError, RoleAssignments

logger = logging.getLogger("auth_jwt.bootstrap")

PASSWORD_FILE = "admin-password"


def local_admin_password(var_dir: Path) -> str:
    """The password in ``<var>/admin-password``, generated (mode 0600) when absent."""
    path = var_dir / PASSWORD_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


class AdminBootstrap:
    def __init__(self, settings: Settings, users: UserDirectory, roles: RoleAssignments) -> None:
        self.settings = settings
        self.users = users
        self.roles = roles
        self.done = False
        self.skipped_reason: str | None = None

    def _password(self) -> str | None:
        if self.settings.admin_password is not None:
            return self.settings.admin_password.get_secret_value()
        if self.settings.is_local:
            return local_admin_password(self.settings.var_dir)
        return None

    async def ensure(self) -> bool:
        """One attempt; True once the admin exists (or there is nothing to do)."""
        username = self.settings.admin_username
        if await self.users.region_of(username) is not None:
            return await self._grant_admin_role(username)
        password = self._password()
        if password is None:
            self.skipped_reason = "no EDGE_ADMIN_PASSWORD outside the local profile"
            logger.warning("bootstrap admin not created: set EDGE_ADMIN_PASSWORD")
            self.done = True
            return True
        region = self.settings.admin_region
        status = await self.users.register(
            region, {"username": username, "password": password, "region": region}
        )
        if status in (201, 409):
            logger.info("bootstrap admin ready", extra={"username": username, "region": region})
            return await self._grant_admin_role(username)
        if 400 <= status < 500:
            self.skipped_reason = f"sv-user refused the admin account ({status})"
            logger.error("bootstrap admin refused", extra={"status": status})
            self.done = True
            return True
        return False

    async def _grant_admin_role(self, username: str) -> bool:
        """The admin holds the admin role in auth-rbac (idempotent; retried until it does)."""
        entry = await self.users.entry_of(username)
        if entry is None:
            return False
        try:
            await self.roles.assign(str(entry["user_id"]), self.settings.admin_role)
        except RoleAssignmentError as exc:
            logger.info("bootstrap admin waiting for auth-rbac", extra={"error": str(exc)})
            return False
        self.done = True
        return True

    async def run(self, *, first_delay: float = 0.2, max_delay: float = 5.0) -> None:
        """Retry :meth:`ensure` until it succeeds (peers may still be starting)."""
        delay = first_delay
        while not self.done:
            try:
                if await self.ensure():
                    return
            except CredentialCheckUnavailable as exc:
                logger.info("bootstrap admin waiting for peers", extra={"error": str(exc)})
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)

    async def ready(self) -> None:
        """Readiness probe: not ready until the admin exists."""
        if not self.done:
            raise RuntimeError("bootstrap admin not created yet")
