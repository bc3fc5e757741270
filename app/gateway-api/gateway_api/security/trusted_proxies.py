"""The load balancers whose ``X-Forwarded-For`` is believed: addresses or CIDR ranges.

Behind a cloud load balancer the peer is one of many addresses of a subnet, so the
setting takes networks (``10.0.0.0/8``, ``fd00::/8``) as well as single addresses.
"""

from __future__ import annotations

import ipaddress

#: Answers kept per address before the cache starts over (peers and forwarded hops).
_CACHE_SIZE = 4096

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """Comma-separated addresses and networks; raises ValueError naming a bad entry."""
    networks: list[Network] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"{item!r} is not an IP address or network: {exc}") from None
    return tuple(networks)


class TrustedProxies:
    """Whether an address belongs to a trusted proxy; answers are cached per address."""

    def __init__(self, spec: str = "") -> None:
        self.networks = parse_networks(spec)
        self._known: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def covers(self, address: str) -> bool:
        """True when ``address`` (as the socket or a forwarded hop gives it) is trusted."""
        if not self.networks:
            return False
        known = self._known.get(address)
        if known is None:
            known = self._check(address)
            if len(self._known) >= _CACHE_SIZE:
                self._known.clear()
            self._known[address] = known
        return known

    def _check(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            return False  # a forwarded hop that is no address (``unknown``, a name)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
        return any(ip in network for network in self.networks)
