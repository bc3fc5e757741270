"""The bootstrap administrator: an account named ``admin`` exists once the stack is up.

Its password comes from ``EDGE_ADMIN_PASSWORD`` (or ``AUTH_JWT_ADMIN_PASSWORD``). In
the local profile without one, a password is generated and written to
``<var>/admin-password`` (mode 0600). Elsewhere, without one, no admin is created.
The account lives in sv-user like any other; auth-jwt only makes sure it exists,
retrying until sv-region and sv-user answer, and reports ready once it does.

The admin role goes only to the account the bootstrap created itself: its id is
chosen here, stored in auth-jwt's ``bootstrap_accounts`` table before sv-user is
asked, and sv-user creates it through an internal endpoint that only auth-jwt may
call (``admin`` and the other privileged names are refused to public registration).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path

from auth_jwt.bootstrap_records import BootstrapRecords
from auth_jwt.config import Settings
from auth_jwt.peers import UserDirectory
from auth_jwt.sessions.exceptions import CredentialCheckUnavailable
from edgelib.roles import RoleAssignmentError, RoleAssignments

logger = logging.getLogger("auth_jwt.bootstrap")

PASSWORD_FILE = "admin-password"
ADMIN = "admin"


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
    def __init__(
        self,
        settings: Settings,
        users: UserDirectory,
        roles: RoleAssignments,
        records: BootstrapRecords,
    ) -> None:
        self.settings = settings
        self.users = users
        self.roles = roles
        self.records = records
        self.done = False
        self.skipped_reason: str | None = None

    def _password(self) -> str | None:
        if self.settings.admin_password is not None:
            return self.settings.admin_password.get_secret_value()
        if self.settings.is_local:
            return local_admin_password(self.settings.var_dir)
        return None

    def _skip(self, reason: str) -> bool:
        self.skipped_reason = reason
        self.done = True
        return True

    async def ensure(self) -> bool:
        """One attempt; True once the admin exists (or there is nothing to do).

        The role goes only to the account whose id this bootstrap chose and remembered,
        never to an account found by its name: whoever registered the name first would
        otherwise become admin at the next restart.
        """
        record = await self.records.get(ADMIN)
        if record is None or record.confirmed_at is None:
            password = self._password()
            if password is None:
                logger.warning("bootstrap admin not created: set EDGE_ADMIN_PASSWORD")
                return self._skip("no EDGE_ADMIN_PASSWORD outside the local profile")
            if record is None:
                record = await self.records.start(
                    ADMIN, self.settings.admin_username.lower(), self.settings.admin_region
                )
            account = {
                "user_id": record.user_id,
                "username": record.username,
                "password": password,
                "region": record.region,
            }
            status = await self.users.create_bootstrap_account(record.region, account)
            if status == 409:
                # The name belongs to an account this bootstrap did not create (made
                # before names were reserved, or by hand): it gets no role from here.
                logger.error(
                    "bootstrap admin name is held by another account; no role granted",
                    extra={"username": record.username},
                )
                return self._skip(f"the name {record.username!r} is held by another account")
            if 400 <= status < 500:
                logger.error("bootstrap admin refused", extra={"status": status})
                return self._skip(f"sv-user refused the admin account ({status})")
            if status not in (200, 201):
                return False
            await self.records.confirm(ADMIN)
            logger.info(
                "bootstrap admin ready",
                extra={"user_id": record.user_id, "region": record.region},
            )
        return await self._grant_admin_role(record.user_id)

    async def _grant_admin_role(self, user_id: str) -> bool:
        """The remembered admin holds the admin role in auth-rbac (idempotent; retried)."""
        try:
            await self.roles.assign(user_id, self.settings.admin_role)
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
