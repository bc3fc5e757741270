"""Access tokens (JWT, RFC 9068 profile) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime

import jwt

from auth_jwt.keys.ring import ActiveKey
from auth_jwt.models import AuthSession

ACCESS_TOKEN_TYPE = "at+jwt"


def mint_access_token(
    key: ActiveKey,
    session: AuthSession,
    *,
    issuer: str,
    audience: str,
    ttl: int,
    now: datetime,
) -> str:
    issued = int(now.timestamp())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": session.user_id,
        "sid": session.id,
        "region": session.region,
        "client_type": session.client_type,
        "preferred_username": session.username,
        "tenant": session.tenant,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(
        claims,
        key.private_key,
        algorithm=key.alg,
        headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE},
    )


def new_refresh_token() -> str:
    """256 random bits, URL-safe; meaningless without the server's record of it."""
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
