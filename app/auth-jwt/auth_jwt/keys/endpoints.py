"""The JWKS (public) and key rotation (admin; the gateway checks keys:rotate)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from auth_jwt.keys.ring import KeyRing
from auth_jwt.keys.schemas import RotatedKey
from edgelib.identity import Identity
from edgelib.permissions import RequirePermission

router = APIRouter(tags=["keys"])
#: Checked here as well as at the gateway: a wrong route table must not open it.
KeyRotator = Annotated[Identity, RequirePermission("keys:rotate")]


class JwkSetResponse(JSONResponse):
    """A JSON Web Key Set, with its own media type (RFC 7517 section 8.5)."""

    media_type = "application/jwk-set+json"


@router.get("/.well-known/jwks.json", response_class=JwkSetResponse)
async def jwks(request: Request) -> JSONResponse:
    """Public keys that verify access tokens (RFC 7517)."""
    ring: KeyRing = request.app.state.keys
    document: dict[str, Any] = await ring.jwks()
    return JwkSetResponse(document, headers={"cache-control": "public, max-age=60"})


@router.post("/api/v1/auth/keys/rotate", response_model=RotatedKey)
async def rotate(request: Request, caller: KeyRotator) -> RotatedKey:
    """Sign new tokens with a fresh key; older keys stay published until their tokens expire."""
    ring: KeyRing = request.app.state.keys
    key = await ring.rotate()
    document = await ring.jwks(max_age=0)
    return RotatedKey(kid=key.kid, alg=key.alg, published=[k["kid"] for k in document["keys"]])
