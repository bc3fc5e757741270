"""FastAPI dependencies every service shares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from edgelib.backends import Backend
from edgelib.db import db_session
from edgelib.problems import Unauthorized
from edgelib.signing import ServiceSigner, SignatureError


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async for session in db_session(request):
        yield session


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


async def internal_caller(request: Request) -> str:
    """Name of the service that signed this request; 401 when the signature is not valid."""
    signer: ServiceSigner = request.app.state.signer
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    body = await request.body()
    try:
        return signer.verify(request.method, target, request.headers, body)
    except SignatureError as exc:
        raise Unauthorized(
            f"internal endpoint: {exc}", headers={"WWW-Authenticate": "EdgeService"}
        ) from exc


SessionDep = Annotated[AsyncSession, Depends(_session)]
BackendDep = Annotated[Backend, Depends(_backend)]
InternalCaller = Annotated[str, Depends(internal_caller)]
