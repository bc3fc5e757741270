"""Key material: generate a signing key, store it encrypted, publish its public JWK."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

# RFC 7638: the members a thumbprint covers, per key type.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    kid: str
    alg: str
    private_key: PrivateKey
    public_jwk: dict[str, Any]


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a stable, content-derived ``kid``."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def public_jwk(private_key: PrivateKey, alg: str) -> dict[str, Any]:
    public = private_key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        jwk = dict(ECAlgorithm.to_jwk(public, as_dict=True))
    else:
        jwk = dict(OKPAlgorithm.to_jwk(public, as_dict=True))
    jwk.update(kid=thumbprint(jwk), alg=alg, use="sig")
    return jwk


def generate(alg: str) -> KeyMaterial:
    """A fresh key for ``alg`` (ES256: P-256; EdDSA: Ed25519)."""
    private_key: PrivateKey
    if alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    jwk = public_jwk(private_key, alg)
    return KeyMaterial(jwk["kid"], alg, private_key, jwk)


def seal(private_key: PrivateKey, passphrase: bytes) -> str:
    """PKCS#8 PEM encrypted with ``passphrase``."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    ).decode()


def unseal(pem: str, passphrase: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=passphrase)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError("stored key is not an EC or Ed25519 key")
    return key
