"""Role assignments in auth-rbac, made on another service's behalf.

sv-user gives each new account the default role; auth-jwt gives the bootstrap admin
the admin role. The call is idempotent on auth-rbac's side (200 when the assignment
exists) and carries an ``Idempotency-Key`` so the client may retry it.
"""

from __future__ import annotations

import asyncio
import logging
import random

from edgelib.client import ServiceCallError, ServiceClient

logger = logging.getLogger("edgelib.roles")


class RoleAssignmentError(Exception):
    """auth-rbac refused or could not take an assignment."""


class RoleAssignments:
    def __init__(self, client: ServiceClient, *, domain: str = "default") -> None:
        self.client = client
        self.domain = domain
        self._pending: set[asyncio.Task[None]] = set()

    async def assign(self, user_id: str, role: str) -> None:
        """Give ``user_id`` ``role`` now; raises RoleAssignmentError when it did not happen."""
        try:
            response = await self.client.post(
                "/internal/assignments",
                json={"user": user_id, "role": role, "dom": self.domain},
                headers={"Idempotency-Key": f"assign:{self.domain}:{user_id}:{role}"},
            )
        except ServiceCallError as exc:
            raise RoleAssignmentError(f"auth-rbac unreachable: {exc}") from exc
        if response.status_code not in (200, 201):
            raise RoleAssignmentError(f"auth-rbac answered {response.status_code}")

    def assign_soon(self, user_id: str, role: str, *, attempts: int = 8) -> None:
        """Assign in the background, retrying with backoff; never blocks the caller."""
        task = asyncio.create_task(self._assign_with_retries(user_id, role, attempts))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _assign_with_retries(self, user_id: str, role: str, attempts: int) -> None:
        delay = 0.2
        for attempt in range(1, attempts + 1):
            try:
                await self.assign(user_id, role)
                return
            except RoleAssignmentError as exc:
                if attempt == attempts:
                    logger.error(
                        "role assignment failed",
                        extra={"user_id": user_id, "role": role, "error": str(exc)},
                    )
                    return
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 10.0)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (a bounded time) for background assignments, e.g. at shutdown."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)
