"""Which instance answered: a public view and a signed internal one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel

from edgelib.deps import InternalCaller
from edgelib.identity import GATEWAY_SERVICE


class About(BaseModel):
    service: str
    instance: str
    region: str | None
    caller: str | None = None


def _about(request: Request, caller: str | None = None) -> About:
    settings = request.app.state.settings
    return About(
        service=settings.service_name,
        instance=settings.instance_id,
        region=settings.region,
        caller=caller,
    )


def about_router(api_prefix: str | None) -> APIRouter:
    """``GET {api_prefix}/about`` (public) and ``GET /internal/about`` (signed only)."""
    router = APIRouter(tags=["about"])

    if api_prefix:

        @router.get(f"{api_prefix}/about", response_model=About)
        async def about(request: Request) -> About:
            """Name the service instance that served this request."""
            return _about(request)

    @router.get("/internal/about", response_model=About, tags=["internal"])
    async def internal_about(
        request: Request,
        caller: Annotated[str, InternalCaller(allowed={GATEWAY_SERVICE})],
    ) -> About:
        """The same, for signed service-to-service callers only."""
        return _about(request, caller)

    return router
