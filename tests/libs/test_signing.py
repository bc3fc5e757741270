from __future__ import annotations

import hashlib
import hmac
import itertools

import pytest

from edgelib.backends import MemoryBackend
from edgelib.keyring import Keyring, KeyringError, derive_key
from edgelib.replay import ReplayCache
from edgelib.signing import (
    HEADER_IDENTITY,
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_SERVICE,
    HEADER_SIGNATURE,
    UNSIGNED_PAYLOAD,
    ServiceSigner,
    SignatureError,
)

NOW = 1_800_000_000.0


@pytest.fixture
def signer() -> ServiceSigner:
    return ServiceSigner("sv-user", "s3cret")


@pytest.fixture
def verifier() -> ServiceSigner:
    return ServiceSigner("auth-jwt", "s3cret")


def test_signed_request_verifies_and_names_its_caller(
    signer: ServiceSigner, verifier: ServiceSigner
) -> None:
    headers = signer.sign("POST", "/internal/x?a=1", b'{"k":1}', destination="auth-jwt", now=NOW)
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
    signer: ServiceSigner, verifier: ServiceSigner, method: str, target: str, body: bytes
) -> None:
    headers = signer.sign("POST", "/internal/x?a=1", b'{"k":1}', destination="auth-jwt", now=NOW)
    with pytest.raises(SignatureError):
        verifier.verify(method, target, headers, body, now=NOW)


def test_a_signature_for_another_destination_is_refused(signer: ServiceSigner) -> None:
    headers = signer.sign("GET", "/internal/x", b"", destination="sv-region", now=NOW)
    with pytest.raises(SignatureError, match="bad service signature"):
        ServiceSigner("auth-rbac", "s3cret").verify("GET", "/internal/x", headers, b"", now=NOW)
    assert ServiceSigner("sv-region", "s3cret").verify("GET", "/internal/x", headers, b"", now=NOW)


def test_wrong_secret_is_refused(signer: ServiceSigner) -> None:
    headers = signer.sign("GET", "/internal/x", b"", destination="x", now=NOW)
    with pytest.raises(SignatureError, match="bad service signature"):
        ServiceSigner("x", "other").verify("GET", "/internal/x", headers, b"", now=NOW)


def test_stale_timestamp_is_refused(signer: ServiceSigner, verifier: ServiceSigner) -> None:
    headers = signer.sign("GET", "/internal/x", b"", destination="auth-jwt", now=NOW - 31)
    with pytest.raises(SignatureError, match="stale"):
        verifier.verify("GET", "/internal/x", headers, b"", now=NOW)


def test_missing_headers_are_refused(verifier: ServiceSigner) -> None:
    with pytest.raises(SignatureError, match="missing"):
        verifier.verify("GET", "/internal/x", {}, b"", now=NOW)


def test_forged_identity_header_breaks_the_signature(
    signer: ServiceSigner, verifier: ServiceSigner
) -> None:
    headers = signer.sign(
        "GET", "/api/v1/x", None, destination="auth-jwt", identity="user=1", now=NOW
    )
    assert (
        verifier.verify("GET", "/api/v1/x", headers, None, require_body_digest=False, now=NOW)
        == "sv-user"
    )
    forged = {**headers, HEADER_IDENTITY: "user=admin"}
    with pytest.raises(SignatureError):
        verifier.verify("GET", "/api/v1/x", forged, None, require_body_digest=False, now=NOW)


def test_unsigned_payload_only_where_allowed(
    signer: ServiceSigner, verifier: ServiceSigner
) -> None:
    headers = signer.sign("POST", "/x", None, destination="auth-jwt", now=NOW)
    assert UNSIGNED_PAYLOAD in headers.values()
    with pytest.raises(SignatureError, match="body digest required"):
        verifier.verify("POST", "/x", headers, b"anything", now=NOW)


@pytest.mark.parametrize("header", [HEADER_SERVICE, HEADER_NONCE, HEADER_KEY_ID])
def test_the_caller_name_nonce_and_key_id_are_covered(
    signer: ServiceSigner, verifier: ServiceSigner, header: str
) -> None:
    headers = signer.sign("GET", "/x", b"", destination="auth-jwt", now=NOW)
    headers[header] = "gateway-api" if header == HEADER_SERVICE else "k2"
    with pytest.raises(SignatureError):
        verifier.verify("GET", "/x", headers, b"", now=NOW)
    assert HEADER_SIGNATURE in headers


def test_each_signature_has_its_own_nonce(signer: ServiceSigner) -> None:
    nonces = {
        signer.sign("GET", "/x", b"", destination="auth-jwt", now=NOW)[HEADER_NONCE]
        for _ in range(100)
    }
    assert len(nonces) == 100


@pytest.mark.parametrize("key_length", [0, 1, 32, 63, 64, 65, 200])
def test_signatures_are_standard_hmac_sha256_for_any_key_length(key_length: int) -> None:
    # The signer keys two SHA-256 states itself (RFC 2104); it must agree with hmac,
    # which is what any other implementation of the protocol would use.
    key = bytes(range(256))[:key_length]
    ring = Keyring("svc", signing={"dest": [("k9", key)]})
    headers = ServiceSigner("svc", ring).sign(
        "POST", "/a/b?c=d", b'{"x":1}', destination="dest", identity="sub=u1", now=1_700_000_000
    )
    message = "\n".join(
        (
            "POST",
            "/a/b?c=d",
            "1700000000",
            "svc",
            "dest",
            "k9",
            headers[HEADER_NONCE],
            "sub=u1",
            hashlib.sha256(b'{"x":1}').hexdigest(),
        )
    ).encode()
    assert headers["x-edge-signature"] == hmac.new(key, message, hashlib.sha256).hexdigest()


def _ring(service: str, dests: set[str], callers: set[str], kids: list[str], kid: str) -> Keyring:
    return Keyring.derived(
        "root", service, destinations=dests, callers=callers, kids=kids, signing_kid=kid
    )


def test_a_deployed_ring_holds_only_the_pairs_its_service_needs() -> None:
    notice = _ring("sv-notice", {"sv-region", "auth-rbac"}, {"gateway-api"}, ["k1"], "k1")
    assert set(notice.signing) == {"sv-region", "auth-rbac"}
    assert set(notice.verifying) == {"gateway-api"}
    # Keys per pair: the key sv-notice signs with for auth-rbac is not sv-user's.
    assert notice.signing_key("auth-rbac")[1] == derive_key("root", "sv-notice", "auth-rbac", "k1")
    assert notice.signing_key("auth-rbac")[1] != derive_key("root", "sv-user", "auth-rbac", "k1")
    with pytest.raises(KeyringError):
        notice.signing_key("sv-money")
    assert Keyring.from_json(notice.to_json(), service="sv-notice") == notice


def test_a_stolen_ring_cannot_sign_as_another_service() -> None:
    notice = ServiceSigner(
        "sv-notice", _ring("sv-notice", {"auth-rbac"}, set(), ["k1"], "k1"), max_skew=30
    )
    rbac = ServiceSigner(
        "auth-rbac", _ring("auth-rbac", set(), {"sv-user", "sv-notice"}, ["k1"], "k1")
    )
    own = notice.sign("POST", "/internal/assignments", b"{}", destination="auth-rbac", now=NOW)
    assert rbac.verify("POST", "/internal/assignments", own, b"{}", now=NOW) == "sv-notice"
    # Claiming to be sv-user with sv-notice's key fails: the verifier uses sv-user's key.
    as_user = {**own, HEADER_SERVICE: "sv-user"}
    with pytest.raises(SignatureError, match="bad service signature"):
        rbac.verify("POST", "/internal/assignments", as_user, b"{}", now=NOW)
    # And a caller the ring has no key for is refused outright.
    money = ServiceSigner("sv-money", "root").sign(
        "GET", "/internal/x", b"", destination="auth-rbac", now=NOW
    )
    with pytest.raises(SignatureError, match="no key"):
        rbac.verify("GET", "/internal/x", money, b"", now=NOW)


def test_rotation_add_promote_retire_never_breaks_a_call() -> None:
    def pair(kids: list[str], kid: str) -> tuple[ServiceSigner, ServiceSigner]:
        return (
            ServiceSigner("sv-user", _ring("sv-user", {"auth-rbac"}, set(), kids, kid)),
            ServiceSigner("auth-rbac", _ring("auth-rbac", set(), {"sv-user"}, kids, kid)),
        )

    steps = [(["k1"], "k1"), (["k1", "k2"], "k1"), (["k1", "k2"], "k2"), (["k2"], "k2")]
    rings = [pair(kids, kid) for kids, kid in steps]
    # During a rolling restart each step's processes meet the previous step's, both ways.
    for (old_signer, old_verifier), (new_signer, new_verifier) in itertools.pairwise(rings):
        for signer, verifier in ((old_signer, new_verifier), (new_signer, old_verifier)):
            headers = signer.sign("GET", "/internal/x", b"", destination="auth-rbac", now=NOW)
            assert verifier.verify("GET", "/internal/x", headers, b"", now=NOW) == "sv-user"
    old = rings[0][0].sign("GET", "/internal/x", b"", destination="auth-rbac", now=NOW)
    assert old[HEADER_KEY_ID] == "k1"
    with pytest.raises(SignatureError, match="no key 'k1'"):
        rings[-1][1].verify("GET", "/internal/x", old, b"", now=NOW)


async def test_the_replay_cache_takes_a_nonce_once(
    signer: ServiceSigner, verifier: ServiceSigner
) -> None:
    cache = ReplayCache(MemoryBackend(), "auth-jwt", max_skew=30)
    headers = signer.sign("GET", "/internal/x", b"", destination="auth-jwt")
    caller = verifier.verify_request("GET", "/internal/x", headers, b"")
    await cache.first_use(caller)
    with pytest.raises(SignatureError, match="replayed"):
        await cache.first_use(caller)
    assert cache.ttl == 61
