"""The client-facing watch: signed service callers only, never routed by the gateway."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from edgelib.deps import InternalCaller
from sv_config.watch.schemas import WatchRequest, WatchResponse
from sv_config.watch.service import WatchService

router = APIRouter(prefix="/internal/config", tags=["watch (internal)"])


@router.post(
    "/watch",
    response_model=WatchResponse,
    responses={304: {"description": "nothing changed while waiting"}},
)
async def watch(
    body: WatchRequest, request: Request, caller: InternalCaller
) -> WatchResponse | Response:
    """Long poll: the namespaces whose release for this client changed, or 304 after ``wait``."""
    service: WatchService = request.app.state.watch_service
    changes = await service.watch(body)
    if not changes:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED)
    return WatchResponse(changes=changes)
