"""Bad access tokens, each wrong in one way, for the gateway to refuse.

Some are signed with auth-jwt's real current key (read from its database, the way
an insider with a stolen copy of a token would have one signed), so that only the
claim under test is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from auth_jwt.config import DEV_KEY_PASSPHRASE
from auth_jwt.keys.crypto import PrivateKey, unseal
from auth_jwt.models import SigningKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(doc: dict[str, Any]) -> str:
    return _b64(json.dumps(doc, separators=(",", ":")).encode())


async def current_key(
    database_url: str, schema: str | None = None, passphrase: str = DEV_KEY_PASSPHRASE
) -> tuple[str, PrivateKey]:
    """auth-jwt's newest signing key, straight from its table."""
    connect_args = {"server_settings": {"search_path": schema}} if schema else {}
    engine = create_async_engine(database_url, connect_args=connect_args)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(SigningKey.kid, SigningKey.private_pem)
                    .where(SigningKey.retired_at.is_(None))
                    .order_by(SigningKey.created_at.desc())
                )
            ).first()
    finally:
        await engine.dispose()
    assert row is not None, "auth-jwt has no signing key"
    return row[0], unseal(row[1], passphrase.encode())


def bad_tokens(good: str, kid: str, key: PrivateKey) -> dict[str, str]:
    """Refusable variants of the valid access token ``good``."""
    claims = jwt.decode(good, options={"verify_signature": False})
    now = int(time.time())
    header_b64, payload_b64, signature = good.split(".")

    def signed(overrides: dict[str, Any], **headers: Any) -> str:
        body = {**claims, "jti": uuid.uuid4().hex, **overrides}
        return jwt.encode(
            body, key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt", **headers}
        )

    tampered_claims = {**claims, "sub": str(uuid.uuid4()), "preferred_username": "admin"}
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_header = _segment({"alg": "HS256", "typ": "at+jwt", "kid": kid})
    mac = hmac.new(public_pem, f"{hs_header}.{payload_b64}".encode(), hashlib.sha256).digest()
    stranger = ec.generate_private_key(ec.SECP256R1())
    return {
        "tampered": f"{header_b64}.{_segment(tampered_claims)}.{signature}",
        "alg-none": f"{_segment({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{payload_b64}.",
        "hs256-with-public-key": f"{hs_header}.{payload_b64}.{_b64(mac)}",
        "expired": signed({"iat": now - 900, "nbf": now - 900, "exp": now - 600}),
        "wrong-audience": signed({"aud": "some-other-api"}),
        "wrong-issuer": signed({"iss": "https://evil.example"}),
        "not-an-access-token": signed({}, typ="JWT"),
        "unknown-key": jwt.encode(
            {**claims, "jti": uuid.uuid4().hex},
            stranger,
            algorithm="ES256",
            headers={"kid": "unknown-" + uuid.uuid4().hex[:8], "typ": "at+jwt"},
        ),
        "garbage": "not.a.jwt",
    }
