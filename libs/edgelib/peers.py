"""Typed clients for the services a service calls, and the one tree of their errors.

A call either gets a definite answer or raises one of:

- :class:`PeerUnavailable` (503): the peer could not be reached, timed out or answered
  5xx. The caller cannot know whether the call took effect, so whatever it asked must
  be safe to ask again;
- :class:`PeerProblem`: the peer's definite refusal (4xx), relayed to our caller as the
  peer phrased it (status, type, title, detail);
- :class:`UnknownUser` (422), from :class:`DirectoryClient`, when no active user has
  the name or id asked for.

:class:`~edgelib.client.ServiceCallError` (transport) never leaves this module: it is
mapped here, at the boundary.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from edgelib.client import ServiceCallError, ServiceClient
from edgelib.problems import PROBLEM_BASE, Problem, ServiceUnavailable, Unprocessable

__all__ = [
    "DirectoryClient",
    "DirectoryEntry",
    "Peer",
    "PeerProblem",
    "PeerUnavailable",
    "RegionalPeers",
    "Reservation",
    "UnknownUser",
    "refusal",
]


class PeerUnavailable(ServiceUnavailable):
    """A peer gave no definite answer: unreachable, timed out or 5xx."""

    type_slug, title = "peer-unavailable", "A service this request needs is unavailable"


class PeerProblem(Problem):
    """A peer's definite refusal (4xx), shown to the caller as the peer phrased it."""

    def __init__(self, status: int, type_slug: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status
        self.type_slug = type_slug
        self.title = title


class UnknownUser(Unprocessable):
    """No active user has the name or id asked for."""

    type_slug, title = "unknown-user", "No such user"


def refusal(response: httpx.Response, peer: str) -> Problem:
    """The error for an answer that is not the one expected: 5xx or a relayed 4xx."""
    if response.status_code >= 500:
        return PeerUnavailable(f"{peer} answered {response.status_code}")
    try:
        parsed = response.json()
    except ValueError:
        parsed = None
    doc: dict[str, object] = parsed if isinstance(parsed, dict) else {}
    type_uri = str(doc.get("type", ""))
    slug = type_uri.removeprefix(PROBLEM_BASE) if type_uri.startswith(PROBLEM_BASE) else "refused"
    return PeerProblem(
        response.status_code,
        slug,
        str(doc.get("title", "Refused")),
        str(doc.get("detail", f"{peer} refused the request")),
    )


class Peer:
    """One service this one calls, named for the errors it raises."""

    def __init__(self, client: ServiceClient, name: str) -> None:
        self.client = client
        self.name = name

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        expect: Collection[int] | None = (200,),
    ) -> httpx.Response:
        """One signed call: the answer when its status is in ``expect`` (any when None)."""
        try:
            response = await self.client.request(
                method,
                path,
                json=json,
                params=dict(params) if params is not None else None,
                headers=dict(headers) if headers is not None else None,
            )
        except ServiceCallError as exc:
            raise PeerUnavailable(f"{self.name} is not reachable") from exc
        if expect is not None and response.status_code not in expect:
            raise refusal(response, self.name)
        return response

    async def aclose(self) -> None:
        await self.client.aclose()


class RegionalPeers:
    """The same service in each other region, one client per region."""

    def __init__(self, clients: Mapping[str, ServiceClient], service: str) -> None:
        self.service = service
        self._peers = {
            region: Peer(client, f"{service} of region {region!r}")
            for region, client in clients.items()
        }

    def __contains__(self, region: object) -> bool:
        return region in self._peers

    @property
    def regions(self) -> list[str]:
        return sorted(self._peers)

    def peer(self, region: str) -> Peer:
        """``region``'s peer; :class:`PeerUnavailable` when none is configured."""
        peer = self._peers.get(region)
        if peer is None:
            raise PeerUnavailable(f"no {self.service} is configured for region {region!r}")
        return peer

    async def call(self, region: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """:meth:`Peer.call` on ``region``'s peer."""
        return await self.peer(region).call(method, path, **kwargs)

    async def aclose(self) -> None:
        for peer in self._peers.values():
            await peer.aclose()


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """A user as sv-region's directory knows them: id, name and home region."""

    user_id: str
    username: str
    region: str


@dataclass(frozen=True, slots=True)
class Reservation:
    """A username held in the directory for an account about to be created."""

    user_id: str
    username: str
    region: str


class DirectoryClient(Peer):
    """sv-region's user directory: who a user is and where they live.

    Lookups of active users are cached for ``ttl`` seconds (a moved user is seen after at
    most that long); reservations are never cached.
    """

    def __init__(self, client: ServiceClient, *, ttl: float = 30.0, max_cached: int = 100_000):
        super().__init__(client, "the user directory (sv-region)")
        self.ttl = ttl
        self.max_cached = max_cached
        self._cache: dict[str, tuple[float, DirectoryEntry]] = {}

    async def lookup(self, username: str) -> DirectoryEntry:
        """The active user called ``username``; :class:`UnknownUser` when there is none."""
        name = username.strip().lower()
        return await self._entry(
            f"/internal/directory/usernames/{quote(name, safe='')}", f"called {username!r}"
        )

    async def lookup_id(self, user_id: str) -> DirectoryEntry:
        """The active user with id ``user_id``; :class:`UnknownUser` when there is none."""
        return await self._entry(
            f"/internal/directory/users/{quote(user_id, safe='')}", f"with id {user_id!r}"
        )

    async def _entry(self, path: str, what: str) -> DirectoryEntry:
        now = time.monotonic()
        cached = self._cache.get(path)
        if cached is not None and cached[0] > now:
            return cached[1]
        response = await self.call("GET", path, expect=(200, 404))
        doc = response.json() if response.status_code == 200 else {}
        if response.status_code == 404 or doc.get("status", "active") != "active":
            raise UnknownUser(f"there is no user {what}")
        entry = DirectoryEntry(str(doc["user_id"]), str(doc["username"]), str(doc["region"]))
        if len(self._cache) >= self.max_cached:
            self._cache.clear()
        self._cache[path] = (now + self.ttl, entry)
        return entry

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
        response = await self.call(
            "POST", "/internal/directory/reservations", json=body, expect=(201,)
        )
        doc = response.json()
        return Reservation(str(doc["user_id"]), str(doc["username"]), str(doc["region"]))

    async def confirm(self, user_id: str) -> None:
        """Activate the reservation: the account now exists."""
        await self.call("POST", f"/internal/directory/users/{quote(user_id, safe='')}/confirm")

    async def release(self, user_id: str) -> None:
        """Give the name back after a failed registration."""
        await self.call(
            "DELETE", f"/internal/directory/users/{quote(user_id, safe='')}", expect=(204,)
        )
