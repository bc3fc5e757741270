"""Statistics routes: the gateways' signed intake, and the series for tenants' admins.

``stats:read`` is checked in the caller's active tenant (the gateway checked it there
too): the platform's own admins see every tenant, a tenant's admin its own only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request

from edgelib.deps import InternalCaller
from edgelib.identity import Identity
from edgelib.permissions import RequirePermission
from sv_log.stats.exceptions import MissingBatchKey, StatsUnavailable
from sv_log.stats.schemas import StatsAccepted, StatsOut, StatsQueryParams, TodayOut, TodayParams
from sv_log.stats.service import StatsService

STATS_INTAKE_PATH = "/internal/stats"


def _service(request: Request) -> StatsService:
    service: StatsService | None = getattr(request.app.state, "stats_service", None)
    if service is None:
        raise StatsUnavailable("this sv-log keeps no traffic statistics (its store is MongoDB)")
    return service


StatsServiceDep = Annotated[StatsService, Depends(_service)]
#: Only gateways count traffic.
Gateway = Annotated[str, InternalCaller(allowed={"gateway-api"})]
StatsReader = Annotated[Identity, RequirePermission("stats:read", in_tenant=True)]

internal = APIRouter(tags=["internal"])
public = APIRouter(prefix="/api/v1/stats", tags=["stats"])


@internal.post(STATS_INTAKE_PATH, status_code=202, response_model=StatsAccepted)
async def intake(
    request: Request,
    caller: Gateway,
    service: StatsServiceDep,
    content_encoding: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
) -> StatsAccepted:
    """Add one batch of a gateway worker's minute rows, exactly once per idempotency key."""
    if not idempotency_key:
        raise MissingBatchKey("a statistics batch needs an Idempotency-Key")
    rows = service.decode(
        await request.body(),
        content_type=request.headers.get("content-type"),
        content_encoding=content_encoding,
    )
    return await service.ingest(rows, batch_key=idempotency_key)


@public.get("", response_model=StatsOut, response_model_by_alias=True)
async def series(
    params: Annotated[StatsQueryParams, Query()], caller: StatsReader, service: StatsServiceDep
) -> StatsOut:
    """Requests, 4xx, 5xx and latency per minute, hour or day (UTC), one series per group."""
    return await service.series(caller, params)


@public.get("/today", response_model=TodayOut)
async def today(
    params: Annotated[TodayParams, Query()], caller: StatsReader, service: StatsServiceDep
) -> TodayOut:
    """Today so far, hour by hour, against yesterday (whole, and to the same time)."""
    return await service.today(caller, tenant=params.tenant, app=params.app, route=params.route)
