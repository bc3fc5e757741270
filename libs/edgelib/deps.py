"""FastAPI dependencies every service shares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from edgelib.backends import Backend
from edgelib.db import db_session
from edgelib.identity import GATEWAY_SERVICE, Identity, IdentityError
from edgelib.problems import Unauthorized
from edgelib.signing import HEADER_IDENTITY, ServiceSigner, SignatureError


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async for session in db_session(request):
        yield session


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def request_target(request: Request) -> str:
    """The path and query exactly as sent, which is what signatures cover."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    target = raw.decode("latin-1")
    return target + "?" + query.decode("latin-1") if query else target


async def internal_caller(request: Request) -> str:
    """Name of the service that signed this request; 401 when the signature is not valid."""
    signer: ServiceSigner = request.app.state.signer
    body = await request.body()
    try:
        return signer.verify(request.method, request_target(request), request.headers, body)
    except SignatureError as exc:
        raise Unauthorized(
            f"internal endpoint: {exc}", headers={"WWW-Authenticate": "EdgeService"}
        ) from exc


def _gateway_identity(request: Request) -> Identity | None:
    if HEADER_IDENTITY not in request.headers:
        return None
    signer: ServiceSigner = request.app.state.signer
    try:
        caller = signer.verify(
            request.method,
            request_target(request),
            request.headers,
            None,
            require_body_digest=False,
        )
    except SignatureError as exc:
        raise Unauthorized("identity was not signed by the gateway") from exc
    if caller != GATEWAY_SERVICE:
        raise Unauthorized("identity was not signed by the gateway")
    try:
        return Identity.decode(request.headers[HEADER_IDENTITY])
    except IdentityError as exc:
        raise Unauthorized(str(exc)) from exc


async def current_user(request: Request) -> Identity:
    """The caller the gateway authenticated; 401 when there is none."""
    identity = _gateway_identity(request)
    if identity is None:
        raise Unauthorized("authentication required", headers={"WWW-Authenticate": "Bearer"})
    return identity


async def optional_user(request: Request) -> Identity | None:
    """The authenticated caller if any (a forged identity is still refused)."""
    return _gateway_identity(request)


# scope="function": commit before the response leaves, so a caller never acts on a
# write that is not yet visible and a failed commit is answered as an error.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
BackendDep = Annotated[Backend, Depends(_backend)]
InternalCaller = Annotated[str, Depends(internal_caller)]
CurrentUser = Annotated[Identity, Depends(current_user)]
OptionalUser = Annotated[Identity | None, Depends(optional_user)]
