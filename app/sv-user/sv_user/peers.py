"""sv-user's calls to other regions' sv-user and to auth-jwt; sv-region's directory is
:class:`edgelib.peers.DirectoryClient`.

Refusals from a peer come back as :class:`~edgelib.peers.PeerProblem` (the peer's own
problem document, relayed). When a call fails without a definite answer (unreachable,
timed out, 5xx) it is :class:`~edgelib.peers.PeerUnavailable`: the caller cannot know
whether it took effect.
"""

from __future__ import annotations

import logging
from typing import Any

from edgelib.client import ServiceClient
from edgelib.peers import Peer, PeerProblem, PeerUnavailable, RegionalPeers

logger = logging.getLogger("sv_user.peers")


class RegionPeers(RegionalPeers):
    """The sv-user of each other region, for registrations meant for it."""

    def __init__(self, clients: dict[str, ServiceClient]) -> None:
        super().__init__(clients, "sv-user")

    async def create_account(self, region: str, account: dict[str, Any]) -> dict[str, Any]:
        """Have ``region``'s sv-user store ``account`` (idempotent on its ``user_id``)."""
        response = await self.call(
            region,
            "POST",
            "/internal/users",
            json=account,
            headers={"idempotency-key": account["user_id"]},
            expect=(200, 201),
        )
        result: dict[str, Any] = response.json()
        return result


class AuthSessions(Peer):
    """auth-jwt, for ending sessions when credentials change."""

    def __init__(self, client: ServiceClient) -> None:
        super().__init__(client, "auth-jwt")

    async def end_other_sessions(self, user_id: str, keep_session_id: str | None) -> bool:
        """Revoke every session of the user but ``keep_session_id``; False if that failed."""
        try:
            await self.call(
                "POST",
                f"/internal/users/{user_id}/sessions/revoke",
                json={"except_session_id": keep_session_id, "reason": "password-changed"},
            )
        except (PeerUnavailable, PeerProblem) as exc:
            logger.warning("could not end other sessions", extra={"error": exc.detail})
            return False
        return True
