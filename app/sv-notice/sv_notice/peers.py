"""sv-notice's calls to other services: sv-region's directory and other regions' sv-notice.

The gateway sends an administrator to their own region's sv-notice. A send for a
user who lives elsewhere is found in the directory and handed, signed, to that
region's sv-notice, which owns the user's notices.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from edgelib.client import ServiceCallError, ServiceClient
from sv_notice.exceptions import PeerUnavailable, UnknownUser

SEND_PATH = "/internal/notices/send"


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: str
    region: str | None


class Directory:
    """sv-region's user directory, cached for ``ttl`` seconds."""

    def __init__(self, client: ServiceClient, *, ttl: float = 30.0) -> None:
        self.client = client
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Recipient]] = {}

    async def _lookup(self, path: str, what: str) -> Recipient:
        now = time.monotonic()
        cached = self._cache.get(path)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            response = await self.client.get(path)
        except ServiceCallError as exc:
            raise PeerUnavailable("the user directory (sv-region) is not reachable") from exc
        if response.status_code == 404:
            raise UnknownUser(f"there is no user {what}")
        if response.status_code != 200:
            raise PeerUnavailable(f"the user directory answered {response.status_code}")
        doc = response.json()
        if doc.get("status", "active") != "active":
            raise UnknownUser(f"there is no user {what}")
        found = Recipient(str(doc["user_id"]), str(doc["region"]))
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[path] = (now + self.ttl, found)
        return found

    async def by_id(self, user_id: str) -> Recipient:
        return await self._lookup(
            f"/internal/directory/users/{quote(user_id, safe='')}", f"with id {user_id!r}"
        )

    async def by_username(self, username: str) -> Recipient:
        name = username.strip().lower()
        return await self._lookup(
            f"/internal/directory/usernames/{quote(name, safe='')}", f"called {username!r}"
        )


class NoticePeers:
    """Other regions' sv-notice, signed."""

    def __init__(self, clients: dict[str, ServiceClient]) -> None:
        self.clients = clients

    async def send(self, region: str, body: dict[str, Any]) -> httpx.Response:
        client = self.clients.get(region)
        if client is None:
            raise PeerUnavailable(f"no sv-notice is configured for region {region!r}")
        try:
            return await client.post(SEND_PATH, json=body)
        except ServiceCallError as exc:
            raise PeerUnavailable(f"sv-notice of {region!r} is not reachable") from exc

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
