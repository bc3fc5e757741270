"""sv-notice's calls to other regions' sv-notice; sv-region's directory is
:class:`edgelib.peers.DirectoryClient`.

The gateway sends an administrator to their own region's sv-notice. A send for a
user who lives elsewhere is found in the directory and handed, signed, to that
region's sv-notice, which owns the user's notices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from edgelib.client import ServiceClient
from edgelib.peers import RegionalPeers

SEND_PATH = "/internal/notices/send"


@dataclass(frozen=True, slots=True)
class Recipient:
    user_id: str
    region: str | None


class NoticePeers(RegionalPeers):
    """Other regions' sv-notice, signed."""

    def __init__(self, clients: dict[str, ServiceClient]) -> None:
        super().__init__(clients, "sv-notice")

    async def send(self, region: str, body: dict[str, Any]) -> httpx.Response:
        """Hand a send to ``region``; whatever it answers (a refusal included) is the answer."""
        return await self.call(region, "POST", SEND_PATH, json=body, expect=None)
