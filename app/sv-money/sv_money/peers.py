"""sv-money's calls to other services: sv-region's directory and other regions' sv-money.

A call that fails without a definite answer (unreachable, timed out, 5xx) raises
:class:`PeerUnavailable`: the caller cannot know whether it took effect, and whatever
it asked must be safe to ask again. A peer's 4xx comes back as :class:`PeerProblem`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from edgelib.client import ServiceCallError, ServiceClient
from edgelib.problems import PROBLEM_BASE
from sv_money.exceptions import PeerProblem, PeerUnavailable, UnknownUser


@dataclass(frozen=True, slots=True)
class Party:
    """A user as the directory knows them: id, name and home region."""

    user_id: str
    username: str
    region: str


def _refusal(response: httpx.Response, peer: str) -> Exception:
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


class Directory:
    """sv-region's user directory: username -> (user id, region), cached for ``ttl`` seconds."""

    def __init__(self, client: ServiceClient, *, ttl: float) -> None:
        self.client = client
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Party]] = {}

    async def lookup(self, username: str) -> Party:
        """The user called ``username``; :class:`UnknownUser` when there is none."""
        name = username.strip().lower()
        now = time.monotonic()
        cached = self._cache.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            path = f"/internal/directory/usernames/{quote(name, safe='')}"
            response = await self.client.get(path)
        except ServiceCallError as exc:
            raise PeerUnavailable("the user directory (sv-region) is not reachable") from exc
        if response.status_code == 404:
            raise UnknownUser(f"there is no user called {username!r}")
        if response.status_code != 200:
            raise _refusal(response, "sv-region")
        doc = response.json()
        if doc.get("status", "active") != "active":
            raise UnknownUser(f"there is no user called {username!r}")
        party = Party(str(doc["user_id"]), str(doc["username"]), str(doc["region"]))
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[name] = (now + self.ttl, party)
        return party


class MoneyPeers:
    """sv-money of every other region.

    Two clients per region: one with the short timeout money movements use, one with a
    long timeout for the audit's bulk reads.
    """

    def __init__(
        self, clients: dict[str, ServiceClient], bulk: dict[str, ServiceClient] | None = None
    ) -> None:
        self.clients = clients
        self.bulk = bulk if bulk is not None else clients

    def __contains__(self, region: str) -> bool:
        return region in self.clients

    @property
    def regions(self) -> list[str]:
        return sorted(self.clients)

    async def call(
        self,
        region: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str | int] | None = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
        bulk: bool = False,
    ) -> httpx.Response:
        """One signed call to ``region``'s sv-money; a definite answer or an exception."""
        client = (self.bulk if bulk else self.clients).get(region)
        if client is None:
            raise PeerUnavailable(f"region {region!r} is not reachable from this region")
        try:
            response = await client.request(method, path, json=json, params=params, headers=headers)
        except ServiceCallError as exc:
            raise PeerUnavailable(f"sv-money of region {region!r} is not reachable") from exc
        if response.status_code not in expect:
            raise _refusal(response, f"sv-money of region {region!r}")
        return response
