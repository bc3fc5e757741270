"""RFC 9457 problem details: one base error and one set of handlers.

Services raise subclasses of :class:`Problem` from their service layer; the
handlers installed by :func:`install_problem_handlers` turn every error, including
validation errors, unknown routes and unexpected crashes, into
``application/problem+json`` carrying the trace id. No stack trace ever leaves.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from edgelib.logs import current_request_id, current_trace_id
from edgelib.unavailable import CANDIDATE_TYPES, is_unavailable

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://edge.dev/problems/"

logger = logging.getLogger("edgelib.problems")


class Problem(Exception):
    """Base error for everything a user may see; subclasses set the class attributes."""

    status_code: int = 400
    type_slug: str = "bad-request"
    title: str = "Bad request"
    #: True for a refusal that must keep what the request wrote: the unit of work
    #: (:mod:`edgelib.uow`) commits, then the problem is answered.
    commit_changes: bool = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extensions = extensions


class BadRequest(Problem):
    status_code, type_slug, title = 400, "bad-request", "Bad request"


class Unauthorized(Problem):
    status_code, type_slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(Problem):
    status_code, type_slug, title = 403, "forbidden", "Forbidden"


class NotFound(Problem):
    status_code, type_slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status_code, type_slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(Problem):
    status_code, type_slug, title = 413, "payload-too-large", "Payload too large"


class Unprocessable(Problem):
    status_code, type_slug, title = 422, "unprocessable", "Unprocessable request"


class TooManyRequests(Problem):
    status_code, type_slug, title = 429, "too-many-requests", "Too many requests"


class ServiceUnavailable(Problem):
    status_code, type_slug, title = 503, "service-unavailable", "Service unavailable"


class GatewayTimeout(Problem):
    status_code, type_slug, title = 504, "gateway-timeout", "Gateway timeout"


def problem_body(
    status: int,
    type_slug: str,
    title: str,
    detail: str,
    instance: str | None = None,
    **extensions: Any,
) -> bytes:
    """Serialise one problem document, stamped with the current trace and request ids."""
    doc: dict[str, Any] = {
        "type": PROBLEM_BASE + type_slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        doc["instance"] = instance
    trace_id = current_trace_id()
    if trace_id:
        doc["trace_id"] = trace_id
    request_id = current_request_id()
    if request_id:
        doc["request_id"] = request_id
    doc.update(extensions)
    return orjson.dumps(doc)


def problem_response(
    status: int,
    type_slug: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    body = problem_body(status, type_slug, title, detail, instance, **extensions)
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _json_safe(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=str))


async def _handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(
        exc.status_code,
        exc.type_slug,
        exc.title,
        exc.detail,
        instance=request.url.path,
        headers=exc.headers,
        **exc.extensions,
    )


async def _handle_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return problem_response(
        422,
        "validation-error",
        "Request validation failed",
        "The request does not match the expected schema.",
        instance=request.url.path,
        errors=_json_safe(errors),
    )


_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


async def _handle_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem_response(
        exc.status_code,
        slug,
        title,
        detail,
        instance=request.url.path,
        headers=dict(exc.headers or {}),
    )


#: Seconds a client should wait before retrying when a dependency is away.
RETRY_AFTER_UNAVAILABLE = 1


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    if is_unavailable(exc):
        # A database or Redis outage, not a bug: no traceback, and the caller may retry.
        logger.warning(
            "dependency unavailable on %s %s: %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
            str(exc)[:200],
        )
        return problem_response(
            503,
            "service-unavailable",
            "Service unavailable",
            "A server this service needs is not answering; retry shortly.",
            instance=request.url.path,
            headers={"retry-after": str(RETRY_AFTER_UNAVAILABLE)},
        )
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        500,
        "internal-error",
        "Internal error",
        "The server failed to handle this request; quote the trace id when reporting it.",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error of ``app`` through the problem+json handlers."""
    app.add_exception_handler(Problem, _handle_problem)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    # Registered by class, these are answered by the inner exception middleware, which
    # does not re-raise: the connection stays open (see edgelib.unavailable).
    for candidate in CANDIDATE_TYPES:
        app.add_exception_handler(candidate, _handle_unexpected)
    app.add_exception_handler(Exception, _handle_unexpected)
