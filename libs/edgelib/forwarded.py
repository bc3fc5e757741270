"""The client address of a request that came through trusted proxies (the gateway).

The gateway appends the address of the client it served to ``X-Forwarded-For``
(behind its own trusted load balancers, the client those report). A service trusts
that header only when the peer that connected to it is a trusted proxy: called
directly from anywhere else, the header is the caller's to invent, and the peer's
own address is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Loopback: the local stack's gateway runs on the same machine.
DEFAULT_TRUSTED_PROXIES = "127.0.0.1/32,::1/128"


def parse_networks(value: str | Iterable[str]) -> tuple[Network, ...]:
    """CIDR ranges (or single addresses) from a comma-separated setting or a list."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(ipaddress.ip_network(i.strip(), strict=False) for i in items if i.strip())


class ClientAddresses:
    """Finds the client address: the ``hops``-th last X-Forwarded-For entry, if the
    connecting peer is in ``trusted``; the peer's own address otherwise."""

    def __init__(self, trusted: str | Iterable[str], *, hops: int = 1) -> None:
        self.trusted = parse_networks(trusted)
        self.hops = hops

    def is_trusted(self, peer: str | None) -> bool:
        if peer is None or not self.trusted:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def resolve(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The client's address (at most 64 characters), or None when unknown."""
        address = peer
        if self.hops and forwarded_for and self.is_trusted(peer):
            entries = [a.strip() for a in forwarded_for.split(",")]
            entries = [a for a in entries if a]
            if len(entries) >= self.hops:
                address = entries[-self.hops]
        return address[:64] if address else None
