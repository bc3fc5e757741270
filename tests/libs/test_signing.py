from __future__ import annotations

import hashlib
import hmac

import pytest

from edgelib.signing import (
    HEADER_IDENTITY,
    HEADER_SIGNATURE,
    UNSIGNED_PAYLOAD,
    ServiceSigner,
    SignatureError,
)

NOW = 1_800_000_000.0


@pytest.fixture
def signer() -> ServiceSigner:
    return ServiceSigner("sv-user", "s3cret")


def test_signed_request_verifies_and_names_its_caller(signer: ServiceSigner) -> None:
    headers = signer.sign("POST", "/internal/x?a=1", b'{"k":1}', now=NOW)
    verifier = ServiceSigner("auth-jwt", "s3cret")
    assert verifier.verify("POST", "/internal/x?a=1", headers, b'{"k":1}', now=NOW) == "sv-user"


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("GET", "/internal/x?a=1", b'{"k":1}'),
        ("POST", "/internal/y?a=1", b'{"k":1}'),
        ("POST", "/internal/x?a=2", b'{"k":1}'),
        ("POST", "/internal/x?a=1", b'{"k":2}'),
    ],
)
def test_any_change_to_method_target_or_body_breaks_the_signature(
    signer: ServiceSigner, method: str, target: str, body: bytes
) -> None:
    headers = signer.sign("POST", "/internal/x?a=1", b'{"k":1}', now=NOW)
    with pytest.raises(SignatureError):
        signer.verify(method, target, headers, body, now=NOW)


def test_wrong_secret_is_refused(signer: ServiceSigner) -> None:
    headers = signer.sign("GET", "/internal/x", b"", now=NOW)
    with pytest.raises(SignatureError, match="bad service signature"):
        ServiceSigner("x", "other").verify("GET", "/internal/x", headers, b"", now=NOW)


def test_stale_timestamp_is_refused(signer: ServiceSigner) -> None:
    headers = signer.sign("GET", "/internal/x", b"", now=NOW - 31)
    with pytest.raises(SignatureError, match="stale"):
        signer.verify("GET", "/internal/x", headers, b"", now=NOW)


def test_missing_headers_are_refused(signer: ServiceSigner) -> None:
    with pytest.raises(SignatureError, match="missing"):
        signer.verify("GET", "/internal/x", {}, b"", now=NOW)


def test_forged_identity_header_breaks_the_signature(signer: ServiceSigner) -> None:
    headers = signer.sign("GET", "/api/v1/x", None, identity="user=1", now=NOW)
    assert (
        signer.verify("GET", "/api/v1/x", headers, None, require_body_digest=False, now=NOW)
        == "sv-user"
    )
    forged = {**headers, HEADER_IDENTITY: "user=admin"}
    with pytest.raises(SignatureError):
        signer.verify("GET", "/api/v1/x", forged, None, require_body_digest=False, now=NOW)


def test_unsigned_payload_only_where_allowed(signer: ServiceSigner) -> None:
    headers = signer.sign("POST", "/x", None, now=NOW)
    assert UNSIGNED_PAYLOAD in headers.values()
    with pytest.raises(SignatureError, match="body digest required"):
        signer.verify("POST", "/x", headers, b"anything", now=NOW)


def test_signature_is_not_accepted_for_another_caller_name(signer: ServiceSigner) -> None:
    headers = signer.sign("GET", "/x", b"", now=NOW)
    headers["x-edge-service"] = "gateway-api"
    with pytest.raises(SignatureError):
        signer.verify("GET", "/x", headers, b"", now=NOW)
    assert HEADER_SIGNATURE in headers


@pytest.mark.parametrize("key_length", [0, 1, 32, 63, 64, 65, 200])
def test_signatures_are_standard_hmac_sha256_for_any_key_length(key_length: int) -> None:
    # The signer keys two SHA-256 states itself (RFC 2104); it must agree with hmac,
    # which is what any other implementation of the protocol would use.
    key = bytes(range(256))[:key_length]
    signer = ServiceSigner("svc", key)
    headers = signer.sign("POST", "/a/b?c=d", b'{"x":1}', identity="sub=u1", now=1_700_000_000)
    message = "\n".join(
        ("POST", "/a/b?c=d", "1700000000", "svc", "sub=u1", hashlib.sha256(b'{"x":1}').hexdigest())
    ).encode()
    assert headers["x-edge-signature"] == hmac.new(key, message, hashlib.sha256).hexdigest()
