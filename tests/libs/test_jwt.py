"""edgelib.jwt: the JWKS cache and the access-token verifier, on keys made in the test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from edgelib.jwt import (
    ExpiredToken,
    InvalidToken,
    JwksCache,
    TokenVerifier,
    UnknownKey,
    parse_jwks,
)

ISSUER, AUDIENCE = "edge-auth", "edge"


class Issuer:
    """A tiny token issuer: EC keys by kid, a JWKS document, signed tokens."""

    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.fetches = 0
        self.add("k1")

    def add(self, kid: str) -> None:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = dict(ECAlgorithm.to_jwk(key.public_key(), as_dict=True))
            keys.append({**jwk, "kid": kid, "alg": "ES256", "use": "sig"})
        return {"keys": keys}

    async def fetch(self) -> dict[str, Any]:
        self.fetches += 1
        return self.jwks()

    def token(
        self, kid: str = "k1", *, headers: dict[str, Any] | None = None, **overrides: Any
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-1",
            "sid": "session-1",
            "iat": now,
            "exp": now + 300,
            "jti": "j1",
            **overrides,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(
            claims,
            self.keys[kid],
            algorithm="ES256",
            headers={"kid": kid, "typ": "at+jwt", **(headers or {})},
        )


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def make_verifier(issuer: Issuer, **kwargs: Any) -> TokenVerifier:
    cache = JwksCache(issuer.fetch, min_refetch_interval=kwargs.pop("min_refetch", 5.0))
    return TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE, **kwargs)


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


async def test_valid_token_verifies_and_yields_its_claims(issuer: Issuer) -> None:
    claims = await make_verifier(issuer).verify(issuer.token())
    assert claims["sub"] == "user-1"
    assert claims["sid"] == "session-1"


async def test_alg_none_is_refused(issuer: Issuer) -> None:
    header = b64({"alg": "none", "typ": "at+jwt", "kid": "k1"})
    payload = b64({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": time.time() + 60})
    with pytest.raises(InvalidToken, match="algorithm"):
        await make_verifier(issuer).verify(f"{header}.{payload}.")


async def test_hs256_signed_with_the_public_key_is_refused(issuer: Issuer) -> None:
    public_pem = (
        issuer.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = b64({"alg": "HS256", "typ": "at+jwt", "kid": "k1"})
    payload = b64({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60})
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(InvalidToken, match="algorithm"):
        await make_verifier(issuer).verify(forged)


async def test_tampered_payload_is_refused(issuer: Issuer) -> None:
    header, _payload, signature = issuer.token().split(".")
    now = int(time.time())
    forged = b64(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "admin", "iat": now, "exp": now + 300, "jti": "x"}
    )
    with pytest.raises(InvalidToken, match="signature"):
        await make_verifier(issuer).verify(f"{header}.{forged}.{signature}")


async def test_expired_token_is_refused_but_leeway_is_honoured(issuer: Issuer) -> None:
    now = int(time.time())
    verifier = make_verifier(issuer, leeway=5.0)
    with pytest.raises(ExpiredToken):
        await verifier.verify(issuer.token(iat=now - 400, exp=now - 60))
    assert await verifier.verify(issuer.token(iat=now - 400, exp=now - 2))


async def test_not_yet_valid_token_is_refused(issuer: Issuer) -> None:
    with pytest.raises(InvalidToken, match="not valid yet"):
        await make_verifier(issuer).verify(issuer.token(nbf=int(time.time()) + 120))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"aud": "another-service"}, "audience"),
        ({"iss": "someone-else"}, "issuer"),
        ({"jti": None}, "jti"),
    ],
)
async def test_wrong_audience_issuer_or_missing_claim_is_refused(
    issuer: Issuer, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidToken, match=message):
        await make_verifier(issuer).verify(issuer.token(**overrides))


@pytest.mark.parametrize("typ", ["JWT", "id+jwt", None])
async def test_token_that_is_not_an_access_token_is_refused(
    issuer: Issuer, typ: str | None
) -> None:
    token = issuer.token(headers={"typ": typ} if typ else {})
    if typ is None:
        header, rest = token.split(".", 1)
        decoded = json.loads(base64.urlsafe_b64decode(header + "=="))
        decoded.pop("typ")
        token = b64(decoded) + "." + rest
    with pytest.raises(InvalidToken):
        await make_verifier(issuer).verify(token)


async def test_unknown_kid_refetches_once_then_is_rate_limited(issuer: Issuer) -> None:
    verifier = make_verifier(issuer, min_refetch=60.0)
    await verifier.verify(issuer.token())
    assert issuer.fetches == 1
    other = Issuer()
    other.keys["ghost"] = other.keys.pop("k1")
    with pytest.raises(UnknownKey):
        await verifier.verify(other.token("ghost"))
    with pytest.raises(UnknownKey):
        await verifier.verify(other.token("ghost"))
    # Forged kids cannot make the cache hammer the issuer: one fetch per interval.
    assert issuer.fetches <= 2


async def test_successive_rotations_are_picked_up_at_once_only_misses_cool_down(
    issuer: Issuer,
) -> None:
    verifier = make_verifier(issuer, min_refetch=60.0)
    await verifier.verify(issuer.token("k1"))
    for kid in ("k2", "k3"):
        issuer.add(kid)
        assert (await verifier.verify(issuer.token(kid)))["sub"] == "user-1"
    assert issuer.fetches == 3


async def test_key_dropped_from_the_jwks_stops_verifying_once_refetched(issuer: Issuer) -> None:
    cache = JwksCache(issuer.fetch, min_refetch_interval=0.0, max_age=0.0)
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE, cache_size=0)
    token = issuer.token("k1")
    await verifier.verify(token)
    issuer.add("k2")
    del issuer.keys["k1"]
    with pytest.raises(UnknownKey):
        await verifier.verify(token)


async def test_rotated_key_is_found_by_refetching_the_jwks(issuer: Issuer) -> None:
    verifier = make_verifier(issuer, min_refetch=0.0)
    await verifier.verify(issuer.token("k1"))
    issuer.add("k2")
    claims = await verifier.verify(issuer.token("k2"))
    assert claims["sub"] == "user-1"
    assert issuer.fetches == 2


async def test_header_algorithm_must_match_the_key(issuer: Issuer) -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    jwk = dict(OKPAlgorithm.to_jwk(ed.public_key(), as_dict=True))

    async def fetch() -> dict[str, Any]:
        return {"keys": [{**jwk, "kid": "k1", "alg": "EdDSA"}]}

    verifier = TokenVerifier(JwksCache(fetch), issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(InvalidToken, match="does not match"):
        await verifier.verify(issuer.token("k1"))


def test_jwks_parsing_skips_private_encryption_and_unlisted_keys(issuer: Issuer) -> None:
    good = issuer.jwks()["keys"][0]
    private = {**good, "kid": "p", "d": "secret"}
    encryption = {**good, "kid": "e", "use": "enc"}
    hmac_key = {"kty": "oct", "k": "c2VjcmV0", "kid": "h", "alg": "HS256"}
    no_alg = {k: v for k, v in good.items() if k != "alg"} | {"kid": "n"}
    keys = parse_jwks({"keys": [good, private, encryption, hmac_key, no_alg]}, {"ES256"})
    assert set(keys) == {"k1"}


def test_symmetric_algorithms_cannot_be_allowed(issuer: Issuer) -> None:
    with pytest.raises(ValueError, match="HS256"):
        TokenVerifier(
            JwksCache(issuer.fetch), issuer=ISSUER, audience=AUDIENCE, algorithms={"HS256"}
        )


async def test_verified_token_is_served_from_cache_until_it_expires(issuer: Issuer) -> None:
    clock = [time.time()]
    verifier = TokenVerifier(
        JwksCache(issuer.fetch),
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway=0,
        clock=lambda: clock[0],
    )
    token = issuer.token(exp=int(clock[0]) + 60)
    assert await verifier.verify(token) is await verifier.verify(token)
    clock[0] += 61
    with pytest.raises(ExpiredToken):
        await verifier.verify(token)


async def test_failed_jwks_fetch_keeps_known_keys(issuer: Issuer) -> None:
    calls = {"n": 0}

    async def flaky() -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError("issuer down")
        return issuer.jwks()

    cache = JwksCache(flaky, min_refetch_interval=0.0, max_age=0.0)
    verifier = TokenVerifier(cache, issuer=ISSUER, audience=AUDIENCE, cache_size=0)
    await verifier.verify(issuer.token())
    # Stale and the refetch fails: the key it had still verifies.
    await verifier.verify(issuer.token())
    assert calls["n"] >= 2
