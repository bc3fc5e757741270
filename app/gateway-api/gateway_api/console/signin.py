"""Signing in and out: a platform account through auth-jwt, and a console session.

The sign-in form is protected against login CSRF by a double-submit token: a random
value in a SameSite=Strict cookie and its HMAC (with a key this process made) in the
form. Signing in stores the platform's tokens in a new server-side session; the cookie
gets only that session's random id (HttpOnly, SameSite=Strict, Path = the console's
prefix, Secure under TLS). Signing out ends the platform session at auth-jwt too.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from edgelib.problems import Problem
from gateway_api.console.client import PlatformError, apply_tokens
from gateway_api.console.deps import (
    COOKIE,
    ConsoleDep,
    check_csrf,
    current_session,
    permissions,
)
from gateway_api.console.forms import read_form
from gateway_api.console.rendering import render
from gateway_api.console.sessions import ConsoleSession

logger = logging.getLogger("gateway.console")

router = APIRouter()

SIGNIN_COOKIE = "edge_console_signin"
#: This process's key for the sign-in form's tokens (sessions live in memory too).
_KEY = secrets.token_bytes(32)


def _signin_token(nonce: str) -> str:
    return hmac.new(_KEY, nonce.encode(), hashlib.sha256).hexdigest()


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _cookie(response: Response, request: Request, name: str, value: str, *, secure: bool) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=secure,
        path=_base(request) or "/",
    )


def _form_page(
    request: Request, console: ConsoleDep, status: int = 200, **context: Any
) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = render(
        request,
        "signin.html",
        status,
        signin_token=_signin_token(nonce),
        error=context.pop("error", ""),
        username=context.pop("username", ""),
    )
    _cookie(response, request, SIGNIN_COOKIE, nonce, secure=console.secure_cookie)
    return response


@router.get("/signin", response_class=HTMLResponse)
async def signin_form(request: Request, console: ConsoleDep) -> Response:
    """The sign-in form (or the overview, for a signed-in browser)."""
    if current_session(request, console) is not None:
        return RedirectResponse(f"{_base(request)}/overview", status_code=303)
    return _form_page(request, console)


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request, console: ConsoleDep) -> Response:
    """Sign in with a platform account (auth-jwt's login, through the gateway)."""
    form = await read_form(request)
    nonce = request.cookies.get(SIGNIN_COOKIE, "")
    sent = form.get("signin_token")
    if not nonce or not hmac.compare_digest(sent.encode(), _signin_token(nonce).encode()):
        return _form_page(request, console, 403, error="The form expired; please sign in again.")
    username, password = form.get("username").strip(), form.get("password")
    tenant = form.get("tenant").strip() or None
    if not username or not password:
        return _form_page(request, console, 400, error="Enter a username and a password.")
    try:
        tokens = await console.platform.login(username, password, tenant)
    except PlatformError as exc:
        status = exc.status if 400 <= exc.status < 500 else 502
        message = "Wrong username or password." if exc.status == 401 else exc.message
        return _form_page(request, console, status, error=message, username=username)
    authn = console.gateway.security.authn
    assert authn is not None, "gateway not started"
    token = str(tokens["access_token"])
    try:
        identity = await authn.authenticate(
            {"headers": [(b"authorization", f"Bearer {token}".encode())]}
        )
    except Problem as exc:
        return _form_page(request, console, 502, error=f"The new token was refused: {exc.detail}")
    session = ConsoleSession(
        user_id=identity.user_id,
        username=identity.username,
        tenant=identity.tenant,
        access_token=token,
        refresh_token=str(tokens["refresh_token"]),
        access_expires=0.0,
        platform_session=identity.session_id,
    )
    apply_tokens(session, tokens)
    console.sessions.add(session)
    read, _ = permissions(console, session)
    logger.info("console sign-in", extra={"user": identity.user_id, "console_read": read})
    response = RedirectResponse(f"{_base(request)}/overview", status_code=303)
    _cookie(response, request, COOKIE, session.id, secure=console.secure_cookie)
    response.delete_cookie(SIGNIN_COOKIE, path=_base(request) or "/")
    return response


@router.post("/signout")
async def signout(request: Request, console: ConsoleDep) -> Response:
    """End the console session and its platform session (auth-jwt revokes it)."""
    session = current_session(request, console)
    base = _base(request)
    if session is not None:
        await check_csrf(request, session)
        console.sessions.remove(session.id)
        try:
            await console.platform.as_user(session).logout()
        except PlatformError as exc:
            logger.warning("console sign-out: platform logout failed", extra={"error": exc.message})
    response = RedirectResponse(f"{base}/signin", status_code=303)
    response.delete_cookie(COOKIE, path=base or "/")
    return response
