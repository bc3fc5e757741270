"""gRPC statuses and deadlines as the gateway writes and reads them (rpc/status.py)."""

from __future__ import annotations

import pytest

from gateway_api.rpc.status import Code, format_timeout, parse_timeout, status_fields


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"100m", 0.1), (b"5S", 5.0), (b"1H", 3600.0), (b"2M", 120.0), (b"250u", 0.00025)],
)
def test_grpc_timeout_values_are_read_in_seconds(value: bytes, seconds: float) -> None:
    assert parse_timeout(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [b"", b"m", b"123456789m", b"10x", b"-1S", b"1.5S"])
def test_a_malformed_grpc_timeout_is_refused(value: bytes) -> None:
    assert parse_timeout(value) is None


def test_what_is_left_of_a_deadline_is_sent_on_in_milliseconds() -> None:
    assert format_timeout(1.5) == b"1500m"
    assert format_timeout(0.0) == b"1m"  # never zero: the instance would refuse at once
    assert parse_timeout(format_timeout(10**6)) == pytest.approx(10**6)


def test_a_status_message_is_percent_encoded() -> None:
    assert status_fields(Code.UNAVAILABLE, "no instance\n100%") == [
        (b"grpc-status", b"14"),
        (b"grpc-message", b"no instance%0A100%25"),
    ]
