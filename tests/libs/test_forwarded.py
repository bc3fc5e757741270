"""The client address behind trusted proxies: X-Forwarded-For only from a trusted peer."""

from __future__ import annotations

import pytest

from edgelib.forwarded import DEFAULT_TRUSTED_PROXIES, ClientAddresses


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # The gateway (a trusted peer) appended the client it served.
        ("10.1.2.3", "203.0.113.9", "203.0.113.9"),
        ("10.1.2.3", "198.51.100.1, 203.0.113.9", "203.0.113.9"),
        # A caller reaching the service directly cannot choose its address.
        ("192.0.2.50", "203.0.113.9", "192.0.2.50"),
        ("10.1.2.3", None, "10.1.2.3"),
        ("10.1.2.3", " , ", "10.1.2.3"),
        (None, "203.0.113.9", None),
        ("not-an-ip", "203.0.113.9", "not-an-ip"),
        ("fd00::5", "2001:db8::1", "2001:db8::1"),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_peers(
    peer: str | None, forwarded: str | None, expected: str | None
) -> None:
    addresses = ClientAddresses("10.0.0.0/8, fd00::/8", hops=1)
    assert addresses.resolve(peer, forwarded) == expected


def test_hops_pick_the_entry_of_the_outermost_trusted_proxy() -> None:
    addresses = ClientAddresses("10.0.0.0/8", hops=2)
    assert addresses.resolve("10.0.0.1", "198.51.100.1, 203.0.113.9, 10.0.0.7") == "203.0.113.9"
    assert addresses.resolve("10.0.0.1", "10.0.0.7") == "10.0.0.1"


def test_the_default_trusts_loopback_only() -> None:
    addresses = ClientAddresses(DEFAULT_TRUSTED_PROXIES)
    assert addresses.resolve("127.0.0.1", "203.0.113.9") == "203.0.113.9"
    assert addresses.resolve("::1", "203.0.113.9") == "203.0.113.9"
    assert addresses.resolve("10.0.0.1", "203.0.113.9") == "10.0.0.1"


def test_an_address_is_cut_to_64_characters() -> None:
    addresses = ClientAddresses("127.0.0.1")
    assert addresses.resolve("127.0.0.1", "x" * 100) == "x" * 64
