"""The audit log: every change to namespaces, drafts and releases, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from edgelib.deps import CurrentUser
from edgelib.uow import SessionDep
from sv_config.repository import ConfigRepository
from sv_config.schemas import (
    CLUSTER_PATTERN,
    INT32_MAX,
    NAME_PATTERN,
    AuditOut,
    AuditPage,
    Environment,
)

router = APIRouter(prefix="/api/v1/config", tags=["audit"])


@router.get("/audit", response_model=AuditPage)
async def audit_log(
    session: SessionDep,
    user: CurrentUser,
    environment: Environment | None = None,
    cluster: Annotated[str | None, Query(pattern=CLUSTER_PATTERN)] = None,
    namespace: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    action: Annotated[str | None, Query(pattern=r"^[a-z_]{1,16}\.[a-z_]{1,16}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
) -> AuditPage:
    """Who changed what and when; ``before`` pages back from an entry id."""
    entries = await ConfigRepository(session).audit_page(
        environment=environment,
        cluster=cluster,
        namespace=namespace,
        action=action,
        limit=limit,
        before=before,
    )
    items = [AuditOut.model_validate(e) for e in entries]
    return AuditPage(items=items, next_before=items[-1].id if len(items) == limit else None)
