"""The gateway's forwarding signer: the same signatures ``ServiceSigner`` verifies."""

from __future__ import annotations

import hashlib
import time

import pytest

from edgelib.keyring import Keyring
from edgelib.signing import (
    HEADER_IDENTITY,
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    UNSIGNED_PAYLOAD,
    ServiceSigner,
    SignatureError,
)
from gateway_api.security.signing import ForwardSigner

HEADERS = {
    "x-edge-service",
    "x-edge-key-id",
    "x-edge-timestamp",
    "x-edge-nonce",
    "x-edge-content-sha256",
    HEADER_SIGNATURE,
}


@pytest.fixture
def signer() -> ForwardSigner:
    return ForwardSigner("gateway-api", "s3cret")


def _parse_lines(lines: bytes) -> dict[str, str]:
    assert lines.endswith(b"\r\n")
    pairs = [line.split(": ", 1) for line in lines.decode("latin-1").split("\r\n") if line]
    return {name: value for name, value in pairs}


def test_header_lines_are_the_signature_headers_as_http_lines(signer: ForwardSigner) -> None:
    identity = "sub=u1&name=ann&region=east&sid=s1&ct=web"
    headers = _parse_lines(
        signer.header_lines("GET", b"/api/v1/x?a=1", "sv-user", identity.encode())
    )
    assert set(headers) == HEADERS | {HEADER_IDENTITY}
    now = float(headers["x-edge-timestamp"])
    verifier = ServiceSigner("sv-user", "s3cret")
    assert (
        verifier.verify("GET", "/api/v1/x?a=1", headers, None, require_body_digest=False, now=now)
        == "gateway-api"
    )
    # Another target with the same (cached) timestamp lines gets its own signature.
    other = _parse_lines(signer.header_lines("GET", b"/api/v1/y", "sv-user", identity.encode()))
    assert other[HEADER_SIGNATURE] != headers[HEADER_SIGNATURE]
    with pytest.raises(SignatureError):
        verifier.verify("GET", "/api/v1/x?a=1", other, None, require_body_digest=False, now=now)


def test_a_signature_is_only_good_at_its_destination(signer: ForwardSigner) -> None:
    headers = _parse_lines(signer.header_lines("GET", b"/api/v1/x", "sv-user", b"sub=u1"))
    now = float(headers["x-edge-timestamp"])
    with pytest.raises(SignatureError, match="bad service signature"):
        ServiceSigner("sv-money", "s3cret").verify(
            "GET", "/api/v1/x", headers, None, require_body_digest=False, now=now
        )


def test_every_request_gets_its_own_nonce(signer: ForwardSigner) -> None:
    nonces = {
        _parse_lines(signer.header_lines("GET", b"/x", "sv-user", b"id"))[HEADER_NONCE]
        for _ in range(1000)
    }
    assert len(nonces) == 1000
    other = ForwardSigner("gateway-api", "s3cret")
    theirs = _parse_lines(other.header_lines("GET", b"/x", "sv-user", b"id"))[HEADER_NONCE]
    assert theirs not in nonces  # another worker: another random prefix


def test_header_lines_without_identity_carry_no_identity_line(signer: ForwardSigner) -> None:
    headers = _parse_lines(signer.header_lines("DELETE", b"/internal/z", "sv-user"))
    assert HEADER_IDENTITY not in headers
    assert headers["x-edge-content-sha256"] == UNSIGNED_PAYLOAD


def test_a_body_digest_is_signed_when_given(signer: ForwardSigner) -> None:
    body = b'{"amount": 5}'
    digest = hashlib.sha256(body).hexdigest().encode()
    headers = _parse_lines(signer.header_lines("POST", b"/api/v1/p", "sv-money", b"id", digest))
    now = float(headers["x-edge-timestamp"])
    verifier = ServiceSigner("sv-money", "s3cret")
    assert verifier.verify("POST", "/api/v1/p", headers, body, now=now) == "gateway-api"
    with pytest.raises(SignatureError, match="does not match"):
        verifier.verify("POST", "/api/v1/p", headers, b'{"amount": 500}', now=now)


def test_header_lines_sign_raw_bytes_as_services_read_them(signer: ForwardSigner) -> None:
    # Services rebuild the target from the raw path decoded as latin-1 (edgelib.deps).
    raw = "/api/v1/caf\u00e9?q=\u00fc".encode()
    headers = _parse_lines(signer.header_lines("GET", raw, "x"))
    now = float(headers["x-edge-timestamp"])
    verifier = ServiceSigner("x", "s3cret")
    target = raw.decode("latin-1")
    assert verifier.verify("GET", target, headers, None, require_body_digest=False, now=now)


def test_a_new_second_gets_a_new_timestamp(
    signer: ForwardSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_800_000_000.2]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    first = _parse_lines(signer.header_lines("GET", b"/api/v1/x", "sv-user", b"id"))
    clock[0] += 1.0
    later = _parse_lines(signer.header_lines("GET", b"/api/v1/x", "sv-user", b"id"))
    assert first["x-edge-timestamp"] == "1800000000"
    assert later["x-edge-timestamp"] == "1800000001"
    verifier = ServiceSigner("sv-user", "s3cret")
    for headers, now in ((first, 1_800_000_000.0), (later, 1_800_000_001.0)):
        verifier.verify("GET", "/api/v1/x", headers, None, require_body_digest=False, now=now)


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PATCH"])
def test_every_method_verifies_at_the_service(signer: ForwardSigner, method: str) -> None:
    headers = _parse_lines(signer.header_lines(method, b"/a/b?c=d", "sv-user", b"who"))
    now = float(headers["x-edge-timestamp"])
    verifier = ServiceSigner("sv-user", "s3cret")
    assert verifier.verify(method, "/a/b?c=d", headers, None, require_body_digest=False, now=now)


def test_with_a_deployed_ring_it_signs_with_the_current_kid_and_refuses_unknown_services() -> None:
    ring = Keyring.derived(
        "root", "gateway-api", destinations={"sv-user"}, callers=(), kids=["k1", "k2"],
        signing_kid="k2",
    )  # fmt: skip
    signer = ForwardSigner("gateway-api", ring)
    headers = _parse_lines(signer.header_lines("GET", b"/x", "sv-user", b"id"))
    assert headers[HEADER_KEY_ID] == "k2"
    user = Keyring.derived(
        "root", "sv-user", destinations=(), callers={"gateway-api"}, kids=["k1", "k2"],
        signing_kid="k2",
    )  # fmt: skip
    now = float(headers["x-edge-timestamp"])
    assert ServiceSigner("sv-user", user).verify(
        "GET", "/x", headers, None, require_body_digest=False, now=now
    )
    with pytest.raises(SignatureError, match="no key"):
        signer.header_lines("GET", b"/x", "sv-money", b"id")
