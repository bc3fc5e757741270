"""The gateway's forwarding signer: the same signatures ``ServiceSigner`` verifies."""

from __future__ import annotations

import time

import pytest

from edgelib.signing import (
    HEADER_IDENTITY,
    HEADER_SIGNATURE,
    UNSIGNED_PAYLOAD,
    ServiceSigner,
    SignatureError,
)
from gateway_api.signing import ForwardSigner


@pytest.fixture
def signer() -> ForwardSigner:
    return ForwardSigner("gateway-api", "s3cret")


def _parse_lines(lines: bytes) -> dict[str, str]:
    assert lines.endswith(b"\r\n")
    pairs = [line.split(": ", 1) for line in lines.decode().split("\r\n") if line]
    return {name: value for name, value in pairs}


def test_header_lines_are_the_signature_headers_as_http_lines(signer: ForwardSigner) -> None:
    identity = "sub=u1&name=ann&region=east&sid=s1&ct=web"
    headers = _parse_lines(signer.header_lines("GET", b"/api/v1/x?a=1", identity.encode()))
    assert set(headers) == {
        "x-edge-service",
        "x-edge-timestamp",
        "x-edge-content-sha256",
        HEADER_SIGNATURE,
        HEADER_IDENTITY,
    }
    now = float(headers["x-edge-timestamp"])
    reference = ServiceSigner("gateway-api", "s3cret")
    assert headers == reference.sign("GET", "/api/v1/x?a=1", None, identity=identity, now=now)
    verifier = ServiceSigner("sv-user", "s3cret")
    assert (
        verifier.verify("GET", "/api/v1/x?a=1", headers, None, require_body_digest=False, now=now)
        == "gateway-api"
    )
    # Another target with the same (cached) timestamp lines gets its own signature.
    other = _parse_lines(signer.header_lines("GET", b"/api/v1/y", identity.encode()))
    assert other[HEADER_SIGNATURE] != headers[HEADER_SIGNATURE]
    with pytest.raises(SignatureError):
        verifier.verify("GET", "/api/v1/x?a=1", other, None, require_body_digest=False, now=now)


def test_header_lines_without_identity_carry_no_identity_line(signer: ForwardSigner) -> None:
    headers = _parse_lines(signer.header_lines("DELETE", b"/internal/z"))
    assert HEADER_IDENTITY not in headers
    assert headers["x-edge-content-sha256"] == UNSIGNED_PAYLOAD


def test_header_lines_sign_raw_bytes_as_services_read_them(signer: ForwardSigner) -> None:
    # Services rebuild the target from the raw path decoded as latin-1 (edgelib.deps).
    raw = "/api/v1/caf\u00e9?q=\u00fc".encode()
    lines = signer.header_lines("GET", raw)
    headers = dict(line.split(": ", 1) for line in lines.decode("latin-1").split("\r\n") if line)
    now = float(headers["x-edge-timestamp"])
    verifier = ServiceSigner("x", "s3cret")
    target = raw.decode("latin-1")
    assert verifier.verify("GET", target, headers, None, require_body_digest=False, now=now)


def test_a_new_second_gets_a_new_timestamp_and_signature(
    signer: ForwardSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_800_000_000.2]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    first = _parse_lines(signer.header_lines("GET", b"/api/v1/x", b"id"))
    clock[0] += 0.5
    same = _parse_lines(signer.header_lines("GET", b"/api/v1/x", b"id"))
    clock[0] += 1.0
    later = _parse_lines(signer.header_lines("GET", b"/api/v1/x", b"id"))
    assert first == same
    assert first["x-edge-timestamp"] == "1800000000"
    assert later["x-edge-timestamp"] == "1800000001"
    assert later[HEADER_SIGNATURE] != first[HEADER_SIGNATURE]
    verifier = ServiceSigner("sv-user", "s3cret")
    for headers, now in ((first, 1_800_000_000.0), (later, 1_800_000_001.0)):
        verifier.verify("GET", "/api/v1/x", headers, None, require_body_digest=False, now=now)


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PATCH"])
def test_every_method_signs_as_service_signer_does(signer: ForwardSigner, method: str) -> None:
    headers = _parse_lines(signer.header_lines(method, b"/a/b?c=d", b"who"))
    reference = ServiceSigner("gateway-api", "s3cret")
    now = float(headers["x-edge-timestamp"])
    assert headers == reference.sign(method, "/a/b?c=d", None, identity="who", now=now)
