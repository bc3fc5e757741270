"""What every console route depends on: the console's state, the signed-in viewer, and
the checks a change must pass (``console:admin`` and the CSRF token).

- :data:`ConsoleDep`: the :class:`Console` (gateway, sessions, platform client, templates).
- :data:`ViewerDep`: the signed-in user holding ``console:read``; without a session the
  answer is a 303 to the sign-in page, without the permission the 403 page.
- :data:`ChangeDep`: a viewer allowed to change things (``console:admin``) whose request
  carries the session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``);
  otherwise the 403 page. Use it on every route that is not a GET.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from jinja2 import Environment

from edgelib.identity import DEFAULT_TENANT
from gateway_api.console.client import PlatformClient, UserApi
from gateway_api.console.data.cluster import Drains
from gateway_api.console.forms import Form, read_form
from gateway_api.console.sessions import ConsoleSession, SessionStore
from gateway_api.gateway import Gateway
from gateway_api.problems import PolicyUnavailable

COOKIE = "edge_console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass
class Console:
    """The console's state, one per console app (on ``app.state.console``)."""

    gateway: Gateway
    sessions: SessionStore
    platform: PlatformClient
    templates: Environment
    #: Set the cookie's Secure attribute (the console is served over TLS).
    secure_cookie: bool = False
    #: Instances drained from this console (restored from it too).
    drains: Drains = field(default_factory=Drains)


class NotSignedIn(Exception):
    """No live console session: the pages answer with a redirect to sign in."""


class ConsoleForbidden(Exception):
    """Signed in, but not allowed: the 403 page with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Viewer:
    """The signed-in user of this request, what they may do, and their API client."""

    session: ConsoleSession
    api: UserApi
    can_read: bool
    can_admin: bool

    @property
    def csrf(self) -> str:
        return self.session.csrf


def get_console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


ConsoleDep = Annotated[Console, Depends(get_console)]


def permissions(console: Console, session: ConsoleSession) -> tuple[bool, bool]:
    """(``console:read``, ``console:admin``) of the session's user in its tenant, from
    the gateway's embedded policy (the one it enforces on every request)."""
    authz = console.gateway.security.authz
    if authz is None:
        return False, False
    domain = authz.domain if session.tenant == DEFAULT_TENANT else session.tenant
    try:
        admin = authz.allowed(session.user_id, "console", "admin", domain)
        read = admin or authz.allowed(session.user_id, "console", "read", domain)
    except PolicyUnavailable:
        return False, False
    return read, admin


def current_session(request: Request, console: ConsoleDep) -> ConsoleSession | None:
    """The live session of the request's cookie, if any: one whose platform session was
    revoked (sign-out elsewhere, a newer login, an admin's revocation) has ended, as the
    gateway learns of it (within a second)."""
    session = console.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        return None
    authn = console.gateway.security.authn
    if authn is not None and authn.revoked.is_revoked(session.platform_session):
        console.sessions.remove(session.id)
        return None
    return session


def get_viewer(request: Request, console: ConsoleDep) -> Viewer:
    session = current_session(request, console)
    if session is None:
        raise NotSignedIn()
    read, admin = permissions(console, session)
    viewer = Viewer(session, console.platform.as_user(session), read, admin)
    request.state.viewer = viewer  # for the error pages' layout
    if not read:
        raise ConsoleForbidden("Your account does not hold the console:read permission.")
    return viewer


ViewerDep = Annotated[Viewer, Depends(get_viewer)]


async def csrf_token_of(request: Request) -> str:
    """The CSRF token the request carries: the header (htmx), else the form field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    form = await read_form(request)
    return form.get(CSRF_FIELD)


async def check_csrf(request: Request, session: ConsoleSession) -> None:
    """Refuse (403 page) a request without the session's CSRF token."""
    sent = await csrf_token_of(request)
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise ConsoleForbidden("The request's CSRF token is missing or wrong; reload the page.")


async def get_changer(request: Request, viewer: ViewerDep) -> Viewer:
    await check_csrf(request, viewer.session)
    if not viewer.can_admin:
        raise ConsoleForbidden("Changes need the console:admin permission.")
    return viewer


ChangeDep = Annotated[Viewer, Depends(get_changer)]


async def form_of(request: Request) -> Form:
    return await read_form(request)


FormDep = Annotated[Form, Depends(form_of)]


def template_context(request: Request, **extra: Any) -> dict[str, Any]:
    """What every template gets: the prefix, the viewer (if any) and its flashes."""
    viewer: Viewer | None = getattr(request.state, "viewer", None)
    context: dict[str, Any] = {
        "base": request.scope.get("root_path", "").rstrip("/"),
        "viewer": viewer,
        "csrf": viewer.csrf if viewer is not None else "",
        "flashes": viewer.session.take_flashes() if viewer is not None else [],
        "request_path": request.url.path,
    }
    context.update(extra)
    return context
