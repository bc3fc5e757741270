"""sv-money's calls to other regions' sv-money; sv-region's directory is
:class:`edgelib.peers.DirectoryClient`.

A call that fails without a definite answer (unreachable, timed out, 5xx) raises
:class:`~edgelib.peers.PeerUnavailable`: the caller cannot know whether it took effect,
and whatever it asked must be safe to ask again. A peer's 4xx comes back as
:class:`~edgelib.peers.PeerProblem`.
"""

from __future__ import annotations

from typing import Any

import httpx

from edgelib.client import ServiceClient
from edgelib.peers import RegionalPeers


class MoneyPeers:
    """sv-money of every other region.

    Two clients per region: one with the short timeout money movements use, one with a
    long timeout for the audit's bulk reads.
    """

    def __init__(
        self, clients: dict[str, ServiceClient], bulk: dict[str, ServiceClient] | None = None
    ) -> None:
        self.fast = RegionalPeers(clients, "sv-money")
        self.bulk = RegionalPeers(bulk if bulk is not None else clients, "sv-money")

    def __contains__(self, region: str) -> bool:
        return region in self.fast

    @property
    def regions(self) -> list[str]:
        return self.fast.regions

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
        peers = self.bulk if bulk else self.fast
        return await peers.call(
            region, method, path, json=json, params=params, headers=headers, expect=expect
        )
