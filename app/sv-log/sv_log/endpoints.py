"""sv-log's routes: signed intake for services, query and live tail for operators.

The public routes sit behind the gateway, which requires the ``logs:read``
permission; they check it here too, on the identity the gateway signs, so a wrong
route table cannot open them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from edgelib.deps import InternalCaller
from edgelib.identity import Identity
from edgelib.permissions import RequirePermission
from sv_log.schemas import (
    IntakeAccepted,
    LogFilterParams,
    LogPage,
    LogQueryParams,
    RetentionOut,
)
from sv_log.service import LogService
from sv_log.store import LogFilter
from sv_log.tail import sse_events

INTAKE_PATH = "/internal/logs"


def _service(request: Request) -> LogService:
    service: LogService = request.app.state.log_service
    return service


LogServiceDep = Annotated[LogService, Depends(_service)]
#: Every service ships its own logs here (edgelib.logship).
Shipper = Annotated[
    str,
    InternalCaller(
        allowed={
            "gateway-api", "sv-region", "auth-jwt", "auth-rbac", "sv-config", "sv-log",
            "sv-user", "sv-money", "sv-notice",
        }
    ),
]  # fmt: skip
LogReader = Annotated[Identity, RequirePermission("logs:read")]

internal = APIRouter(tags=["internal"])
public = APIRouter(prefix="/api/v1/logs", tags=["logs"])


@internal.post(INTAKE_PATH, status_code=202, response_model=IntakeAccepted)
async def intake(
    request: Request,
    caller: Shipper,
    service: LogServiceDep,
    content_encoding: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> IntakeAccepted:
    """Store one batch of records from a signed service; gzip bodies are accepted."""
    records = service.decode_batch(
        await request.body(),
        content_type=request.headers.get("content-type"),
        content_encoding=content_encoding,
    )
    return await service.ingest(records, idempotency_key=idempotency_key)


@public.get("/records", response_model=LogPage)
async def query_records(
    params: Annotated[LogQueryParams, Query()], user: LogReader, service: LogServiceDep
) -> LogPage:
    """Records matching the filters, newest first (or oldest first), a page at a time."""
    return await service.query(
        LogFilter.from_params(params),
        limit=params.limit,
        cursor=params.cursor,
        newest_first=params.order == "desc",
    )


@public.get(
    "/tail",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def tail(
    params: Annotated[LogFilterParams, Query()], user: LogReader, request: Request
) -> StreamingResponse:
    """Matching records as they arrive, as server-sent events (``event: log``)."""
    service: LogService = request.app.state.log_service
    settings = request.app.state.settings
    flt = LogFilter.from_params(params)

    async def events() -> AsyncIterator[bytes]:
        async with service.hub.follow(flt) as client:
            async for chunk in sse_events(client, settings.tail_heartbeat):
                yield chunk

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


@public.get("/retention", response_model=RetentionOut)
async def retention(user: LogReader, request: Request) -> RetentionOut:
    """How many days records are kept, by default and per service."""
    settings = request.app.state.settings
    return RetentionOut(
        default_days=settings.retention_days,
        by_service=settings.retention_days_by_service,
        interval_seconds=settings.retention_interval,
    )
