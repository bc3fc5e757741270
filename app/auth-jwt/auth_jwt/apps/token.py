"""``POST /api/v1/auth/token``: the OAuth2 token endpoint (RFC 6749 §3.2, §4.4, §5).

It speaks OAuth2, not problem+json, so that standard client libraries work: a
form-encoded body, client authentication by HTTP Basic (§2.3.1: id and secret
form-urlencoded, then Base64) or by ``client_id``/``client_secret`` in the body (not
both), and errors as ``{"error": ..., "error_description": ...}`` JSON: 400, or 401
with ``WWW-Authenticate: Basic`` for ``invalid_client``. Every answer is
``Cache-Control: no-store``. The grant is ``client_credentials``; the token it issues
acts as the app (``sub`` = ``client_id``) in the app's tenant.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from auth_jwt.apps.endpoints import app_service
from auth_jwt.apps.exceptions import (
    OAuthProblem,
    invalid_client,
    invalid_request,
    unsupported_grant_type,
)
from auth_jwt.apps.schemas import AccessToken, OAuthError
from auth_jwt.apps.service import AppService
from auth_jwt.sessions.endpoints import client_of

router = APIRouter(prefix="/api/v1/auth", tags=["oauth2"])

CLIENT_CREDENTIALS = "client_credentials"
FORM = "application/x-www-form-urlencoded"
#: A token request is a few short fields; anything larger is not one.
MAX_BODY = 4096
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CHALLENGE = {"WWW-Authenticate": 'Basic realm="edge", charset="UTF-8"'}

_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": [CLIENT_CREDENTIALS]},
        "client_id": {"type": "string", "description": "Unless sent by HTTP Basic."},
        "client_secret": {"type": "string", "description": "Unless sent by HTTP Basic."},
        "scope": {"type": "string", "description": "Accepted and ignored."},
    },
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthError, "description": "invalid_request, unsupported_grant_type, ..."},
    401: {"model": OAuthError, "description": "invalid_client (WWW-Authenticate: Basic)"},
    429: {"description": "Too many requests from this address (problem+json, Retry-After)"},
}


def _form(body: bytes, content_type: str) -> dict[str, str]:
    if content_type.split(";")[0].strip().lower() != FORM:
        raise invalid_request(f"the body must be {FORM}")
    if len(body) > MAX_BODY:
        raise invalid_request("the body is too large for a token request")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise invalid_request("the body is not a readable form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise invalid_request(f"the parameter {name!r} is repeated")
        form[name] = value
    return form


def _basic(header: str) -> tuple[str, str] | None:
    """The (client_id, client_secret) of an ``Authorization: Basic`` header, if any."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise invalid_client("malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise invalid_client("malformed Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


def _credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    header = request.headers.get("authorization")
    basic = _basic(header) if header else None
    in_body = "client_id" in form or "client_secret" in form
    if basic is not None and in_body and "client_secret" in form:
        raise invalid_request("use one client authentication method, not two")
    if basic is not None:
        if "client_id" in form and form["client_id"] != basic[0]:
            raise invalid_request("client_id differs from the Basic credentials")
        return basic
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not client_id or not secret:
        raise invalid_client("client authentication is required")
    return client_id, secret


def _error(problem: OAuthProblem) -> JSONResponse:
    headers = dict(NO_STORE)
    if problem.status == 401:
        headers.update(CHALLENGE)
    return JSONResponse(
        {"error": problem.error, "error_description": problem.description},
        status_code=problem.status,
        headers=headers,
    )


@router.post(
    "/token",
    response_model=AccessToken,
    responses=_ERRORS,
    openapi_extra={"requestBody": {"required": True, "content": {FORM: {"schema": _FORM_SCHEMA}}}},
)
async def token(
    request: Request, service: Annotated[AppService, Depends(app_service)]
) -> JSONResponse:
    """OAuth2 token endpoint: the client-credentials grant (RFC 6749 §4.4) for apps."""
    state = request.app.state
    await state.limiter.hit(
        state.limits.login_address, client_of(request).address, "token requests from this address"
    )
    try:
        form = _form(await request.body(), request.headers.get("content-type", ""))
        grant = form.get("grant_type")
        if not grant:
            raise invalid_request("grant_type is required")
        if grant != CLIENT_CREDENTIALS:
            raise unsupported_grant_type(grant)
        client_id, secret = _credentials(request, form)
        app = await service.authenticate(client_id, secret)
        issued = await service.issue(app)
    except OAuthProblem as problem:
        return _error(problem)
    body = AccessToken(access_token=issued.token, expires_in=issued.expires_in)
    return JSONResponse(body.model_dump(), headers=NO_STORE)
