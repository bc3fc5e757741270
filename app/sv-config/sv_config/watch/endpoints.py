"""The client-facing watch: signed service callers only, never routed by the gateway."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Request, Response, status

from edgelib.deps import InternalCaller
from edgelib.services import PLATFORM_SERVICES
from sv_config.metrics import NAMESPACES_PUSHED, PUSHES, WATCHES_WAITING
from sv_config.watch.schemas import NamespaceSnapshot, WatchRequest, WatchResponse
from sv_config.watch.service import WatchService

router = APIRouter(prefix="/internal/config", tags=["watch (internal)"])


def _deployment_watchers(request: Request) -> frozenset[str]:
    watchers: frozenset[str] = request.app.state.watch_callers
    return watchers


#: Any platform service may follow its configuration (edgelib.configclient), and the
#: deployment's own services named in ``SV_CONFIG_WATCH_CALLERS``.
Watcher = Annotated[
    str,
    InternalCaller(allowed=PLATFORM_SERVICES - {"sv-config"}, extra=_deployment_watchers),
]


async def _client_gone(request: Request) -> None:
    """Returns when the client disconnects (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.post(
    "/watch",
    response_model=WatchResponse,
    responses={304: {"description": "nothing changed while waiting"}},
)
async def watch(body: WatchRequest, request: Request, caller: Watcher) -> WatchResponse | Response:
    """Long poll: the namespaces whose release for this client changed, or 304 after ``wait``."""
    service: WatchService = request.app.state.watch_service
    changes: list[NamespaceSnapshot] = []
    if body.wait <= 0:
        changes = await service.watch(body)
    else:
        # A client that went away must not keep its wait (and a waiter slot) to the end.
        waiting = asyncio.ensure_future(service.watch(body))
        gone = asyncio.ensure_future(_client_gone(request))
        try:
            with WATCHES_WAITING.track_inprogress():
                await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, gone):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if waiting.done() and not waiting.cancelled():
            changes = waiting.result()
    if not changes:
        PUSHES.labels("unchanged").inc()
        return Response(status_code=status.HTTP_304_NOT_MODIFIED)
    PUSHES.labels("changed").inc()
    NAMESPACES_PUSHED.inc(len(changes))
    return WatchResponse(changes=changes)
