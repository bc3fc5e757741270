"""sv-user's calls to other services: sv-region's directory, other regions' sv-user, auth-jwt.

Refusals from a peer come back as :class:`PeerProblem` (the peer's own problem
document, relayed). When a call fails without a definite answer (unreachable, timed
out, 5xx) it is :class:`PeerUnavailable`: the caller cannot know whether it took
effect.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from edgelib.client import ServiceCallError, ServiceClient
from edgelib.problems import PROBLEM_BASE, Problem, ServiceUnavailable

logger = logging.getLogger("sv_user.peers")


class PeerUnavailable(ServiceUnavailable):
    type_slug, title = "peer-unavailable", "A service this request needs is unavailable"


class PeerProblem(Problem):
    """A peer's definite refusal (4xx), shown to the caller as the peer phrased it."""

    def __init__(self, status: int, type_slug: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status
        self.type_slug = type_slug
        self.title = title


def _refusal(response: httpx.Response, peer: str) -> Problem:
    if response.status_code >= 500:
        return PeerUnavailable(f"{peer} answered {response.status_code}")
    try:
        doc: dict[str, Any] = response.json()
    except ValueError:
        doc = {}
    type_uri = str(doc.get("type", ""))
    slug = type_uri.removeprefix(PROBLEM_BASE) if type_uri.startswith(PROBLEM_BASE) else "refused"
    return PeerProblem(
        response.status_code,
        slug,
        str(doc.get("title", "Refused")),
        str(doc.get("detail", f"{peer} refused the request")),
    )


@dataclass(frozen=True, slots=True)
class Reservation:
    user_id: str
    username: str
    region: str


class DirectoryClient:
    """sv-region's username directory."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def reserve(
        self,
        username: str,
        region: str | None,
        *,
        phone: str | None = None,
        address: str | None = None,
        user_id: str | None = None,
    ) -> Reservation:
        """Hold ``username`` (sv-region assigns the region when ``region`` is None,
        by its rules on ``phone`` and the client ``address``)."""
        body = {
            "username": username,
            "region": region,
            "phone": phone,
            "client_address": address,
            "user_id": user_id,
        }
        try:
            response = await self.client.post("/internal/directory/reservations", json=body)
        except ServiceCallError as exc:
            raise PeerUnavailable("the user directory (sv-region) is not reachable") from exc
        if response.status_code != 201:
            raise _refusal(response, "sv-region")
        doc = response.json()
        return Reservation(doc["user_id"], doc["username"], doc["region"])

    async def confirm(self, user_id: str) -> None:
        """Activate the reservation: the account now exists."""
        try:
            response = await self.client.post(f"/internal/directory/users/{user_id}/confirm")
        except ServiceCallError as exc:
            raise PeerUnavailable("the user directory (sv-region) is not reachable") from exc
        if response.status_code != 200:
            raise _refusal(response, "sv-region")

    async def release(self, user_id: str) -> None:
        """Give the name back after a failed registration; failures are only logged."""
        try:
            response = await self.client.delete(f"/internal/directory/users/{user_id}")
        except ServiceCallError as exc:
            logger.warning("could not release a reservation", extra={"error": str(exc)})
            return
        if response.status_code != 204:
            logger.warning(
                "reservation not released",
                extra={"user_id": user_id, "status": response.status_code},
            )


class RegionPeers:
    """The sv-user of each other region, for registrations meant for it."""

    def __init__(self, clients: dict[str, ServiceClient]) -> None:
        self.clients = clients

    async def create_account(self, region: str, account: dict[str, Any]) -> dict[str, Any]:
        """Have ``region``'s sv-user store ``account`` (idempotent on its ``user_id``)."""
        client = self.clients.get(region)
        if client is None:
            raise PeerUnavailable(f"region {region!r} is not reachable from this region")
        try:
            response = await client.post(
                "/internal/users",
                json=account,
                headers={"idempotency-key": account["user_id"]},
            )
        except ServiceCallError as exc:
            raise PeerUnavailable(f"sv-user of region {region!r} is not reachable") from exc
        if response.status_code not in (200, 201):
            raise _refusal(response, f"sv-user of region {region!r}")
        result: dict[str, Any] = response.json()
        return result


class AuthSessions:
    """auth-jwt, for ending sessions when credentials change."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def end_other_sessions(self, user_id: str, keep_session_id: str | None) -> bool:
        """Revoke every session of the user but ``keep_session_id``; False if that failed."""
        try:
            response = await self.client.post(
                f"/internal/users/{user_id}/sessions/revoke",
                json={"except_session_id": keep_session_id, "reason": "password-changed"},
            )
        except ServiceCallError as exc:
            logger.warning("could not end other sessions", extra={"error": str(exc)})
            return False
        if response.status_code != 200:
            logger.warning(
                "auth-jwt refused to end sessions", extra={"status": response.status_code}
            )
            return False
        return True
