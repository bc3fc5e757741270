"""Where a webhook may connect: public addresses only, resolved once and connected to as checked.

Checking a host name and then letting the HTTP client resolve it again lets a DNS server
answer a public address to the check and ``127.0.0.1`` to the connection (DNS
rebinding). :class:`PinnedBackend` is the only way webhook connections are made: it
resolves once, refuses the host if any answer is internal, connects to the very address
it checked (TLS still verifies, and SNI and ``Host`` still name, the URL's host), and
checks the connected peer again before a byte is sent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: Answers the addresses of ``host`` (a name or an IP literal) for a TCP connection on ``port``.
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

#: Ranges that are internal although Python's ``is_global`` may call them global.
_ALSO_BLOCKED = (
    ipaddress.ip_network("100.64.0.0/10"),  # CGNAT (RFC 6598)
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedAddress(httpcore.ConnectError):
    """The host resolves to, or the connection reached, an internal address."""


def is_blocked(address: IPAddress) -> bool:
    """True for loopback, private, link-local, CGNAT, multicast, reserved and unspecified
    addresses, and for IPv6 addresses that embed such an IPv4 (mapped, 6to4, NAT64, Teredo)."""
    if isinstance(address, ipaddress.IPv6Address):
        for embedded in _embedded_ipv4(address):
            if is_blocked(embedded):
                return True
    return (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_link_local
        or address.is_loopback
        or address.is_private
        or address.is_unspecified
        or any(address in network for network in _ALSO_BLOCKED)
    )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> Iterable[ipaddress.IPv4Address]:
    if address.ipv4_mapped is not None:
        yield address.ipv4_mapped
    if address.sixtofour is not None:
        yield address.sixtofour
    if address.teredo is not None:
        yield from address.teredo
    if address in _NAT64:
        yield ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def literal(host: str) -> IPAddress | None:
    """The address ``host`` spells, or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The operating system's answer, in its order, without repeats."""
    address = literal(host)
    if address is not None:
        return [address]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        # A scoped IPv6 answer ("fe80::1%eth0") keeps its scope in the address.
        candidate = ipaddress.ip_address(str(info[4][0]))
        if candidate not in found:
            found.append(candidate)
    return found


async def resolve_allowed(
    resolver: Resolver, host: str, port: int, *, allow_private: bool
) -> list[IPAddress]:
    """``host``'s addresses, refused as a whole when any of them is internal (unless allowed)."""
    try:
        addresses = await resolver(host, port)
    except (OSError, UnicodeError, ValueError) as exc:
        raise httpcore.ConnectError(f"{host} does not resolve") from exc
    if not addresses:
        raise httpcore.ConnectError(f"{host} does not resolve")
    if not allow_private and any(is_blocked(address) for address in addresses):
        raise BlockedAddress(f"{host} resolves to a non-public address")
    return addresses


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses it resolved and checked."""

    def __init__(
        self,
        resolver: Resolver = system_resolver,
        *,
        allow_private: bool = False,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.resolver = resolver
        self.allow_private = allow_private
        self.inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_allowed(
            self.resolver, host, port, allow_private=self.allow_private
        )
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            await self._check_peer(stream, address)
            return stream
        assert failure is not None
        raise failure

    async def _check_peer(self, stream: httpcore.AsyncNetworkStream, expected: IPAddress) -> None:
        # A NAT, proxy or a changed route could still land elsewhere: trust the socket.
        peer = stream.get_extra_info("server_addr")
        address = literal(str(peer[0])) if isinstance(peer, tuple) and peer else None
        if address is None or (not self.allow_private and is_blocked(address)):
            await stream.aclose()
            raise BlockedAddress("the webhook connection reached a non-public address")
        if address != expected and not self.allow_private:
            await stream.aclose()
            raise BlockedAddress("the webhook connection reached another address than checked")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)
