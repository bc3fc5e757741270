"""The console's ASGI app: mounted under ``/console`` on the admin listener (and under
``/admin`` on the public port with ``GATEWAY_CONSOLE_PUBLIC``).

Every answer carries a strict Content-Security-Policy (only the console's own files:
no inline script, no eval, no framing). Errors are pages, never a stack trace: no
session is a 303 to the sign-in page, no permission or no CSRF token the 403 page, a
platform error the page of its status (a 502 when the platform did not answer).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway_api.config import Settings
from gateway_api.console.client import PlatformClient, PlatformError, SessionEnded
from gateway_api.console.deps import COOKIE, Console, ConsoleForbidden, NotSignedIn, ViewerDep
from gateway_api.console.forms import FormError
from gateway_api.console.pages import PageInfo, page_routers
from gateway_api.console.rendering import render, template_environment
from gateway_api.console.sessions import SessionStore
from gateway_api.console.signin import router as signin_router
from gateway_api.gateway import Gateway

logger = logging.getLogger("gateway.console")

STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


def platform_url(settings: Settings) -> str:
    """The platform's public API: the setting, or this gateway's own public port."""
    if settings.console_platform_url:
        return settings.console_platform_url
    scheme = "https" if settings.tls() is not None else "http"
    return f"{scheme}://127.0.0.1:{settings.port}"


def _placeholder(page: PageInfo) -> APIRouter:
    router = APIRouter()

    @router.get(f"/{page.slug}", response_class=HTMLResponse, name=f"page-{page.slug}")
    async def placeholder(request: Request, viewer: ViewerDep) -> Response:
        return render(request, "placeholder.html", page=page)

    return router


def create_console_app(settings: Settings, gateway: Gateway) -> FastAPI:
    """The console; its platform client is closed with :func:`close_console`."""
    app = FastAPI(
        title="Edge console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.console = Console(
        gateway=gateway,
        sessions=SessionStore(
            max_sessions=settings.console_max_sessions,
            idle_timeout=settings.console_idle_timeout,
            max_age=settings.console_max_age,
        ),
        platform=PlatformClient(
            platform_url(settings),
            timeout=settings.console_timeout,
            client_type=settings.console_client_type,
        ),
        templates=template_environment(),
        secure_cookie=settings.tls() is not None,
    )

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith(request.scope.get("root_path", "") + "/static/"):
            response.headers.setdefault("cache-control", "public, max-age=3600")
        else:
            response.headers.setdefault("cache-control", "no-store")
        return response

    _add_error_pages(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(signin_router)
    for page, router in page_routers():
        app.include_router(router if router is not None else _placeholder(page))

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        base = request.scope.get("root_path", "").rstrip("/")
        return RedirectResponse(f"{base}/overview", status_code=303)

    return app


async def close_console(app: FastAPI) -> None:
    """Close the console's connections to the platform."""
    console: Console = app.state.console
    await console.platform.close()


def _signin_redirect(request: Request) -> Response:
    base = request.scope.get("root_path", "").rstrip("/")
    if request.headers.get("hx-request") == "true":
        # htmx follows a redirect inside the swap; tell it to load the page instead.
        return Response(status_code=204, headers={"hx-redirect": f"{base}/signin"})
    response = RedirectResponse(f"{base}/signin", status_code=303)
    response.delete_cookie(COOKIE, path=base or "/")
    return response


def _add_error_pages(app: FastAPI) -> None:
    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        return _signin_redirect(request)

    @app.exception_handler(SessionEnded)
    async def session_ended(request: Request, exc: SessionEnded) -> Response:
        console: Console = request.app.state.console
        sid = request.cookies.get(COOKIE)
        if sid:
            console.sessions.remove(sid)
        return _signin_redirect(request)

    @app.exception_handler(ConsoleForbidden)
    async def forbidden(request: Request, exc: ConsoleForbidden) -> Response:
        return render(request, "error.html", 403, title="Forbidden", message=exc.reason)

    @app.exception_handler(PlatformError)
    async def platform_error(request: Request, exc: PlatformError) -> Response:
        status = exc.status if 400 <= exc.status < 600 and exc.status != 500 else 502
        return render(request, "error.html", status, title=exc.title, message=exc.message)

    @app.exception_handler(FormError)
    async def form_error(request: Request, exc: FormError) -> Response:
        return render(request, "error.html", exc.status, title="Bad form", message=exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
        return render(
            request, "error.html", 422, title="Invalid request", message=f"check: {fields}"
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return render(
            request, "error.html", exc.status_code, title="Error", message=str(exc.detail)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("console error", extra={"path": request.url.path})
        return render(
            request,
            "error.html",
            502,
            title="Console error",
            message="The console could not show this page; the gateway's log has the details.",
        )
