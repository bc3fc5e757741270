"""Signed service-to-service endpoints: the policy for gateways, assignments on events,
and permission checks for services guarding their own admin endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from auth_rbac.config import SERVICE_ROLES
from auth_rbac.policy.deps import PolicyChangeSession, PolicySyncDep, SnapshotDep
from auth_rbac.policy.enforcer import DEFAULT_DOMAIN, model_text
from auth_rbac.policy.exceptions import RoleNotDelegated
from auth_rbac.policy.schemas import (
    Assignment,
    AssignmentOut,
    EnforceRequest,
    EnforceResult,
    PolicyDocument,
)
from auth_rbac.policy.service import PolicyService
from edgelib.deps import InternalCaller
from edgelib.services import PLATFORM_SERVICES

router = APIRouter(prefix="/internal", tags=["internal"])

#: Gateways load the whole policy.
Gateway = Annotated[str, InternalCaller(allowed={"gateway-api"})]
#: sv-user (new accounts) and auth-jwt (the bootstrap admin) assign roles; which roles,
#: ``AUTH_RBAC_SERVICE_ROLES`` says.
Assigner = Annotated[str, InternalCaller(allowed={"sv-user", "auth-jwt"})]
#: The platform's services check their admin endpoints' permissions (edgelib.permissions).
Guard = Annotated[str, InternalCaller(allowed=PLATFORM_SERVICES - {"gateway-api", "auth-rbac"})]


@router.get("/policy", response_model=PolicyDocument)
async def policy(
    caller: Gateway, sync: PolicySyncDep, since: int | None = Query(None, ge=0)
) -> PolicyDocument:
    """The model and every rule; only the version when it still equals ``since``."""
    # Check the database, not just memory: the answer is never older than the last commit.
    snapshot = await sync.refresh()
    if since is not None and since == snapshot.version:
        return PolicyDocument(version=snapshot.version, changed=False)
    return PolicyDocument(
        version=snapshot.version,
        changed=True,
        model=model_text(),
        rules=[list(rule) for rule in snapshot.rules],
    )


@router.post("/assignments", response_model=AssignmentOut, status_code=status.HTTP_201_CREATED)
async def assign(
    body: Assignment,
    request: Request,
    response: Response,
    session: PolicyChangeSession,
    caller: Assigner,
) -> AssignmentOut:
    """Assign a role on another service's behalf (sv-user on registration, auth-jwt for the
    bootstrap admin), only a role delegated to that service. Idempotent: 200 when the
    assignment already exists."""
    settings = request.app.state.settings
    delegated: dict[str, list[str]] = getattr(settings, "service_roles", SERVICE_ROLES)
    if body.dom != DEFAULT_DOMAIN or body.role not in delegated.get(caller, ()):
        raise RoleNotDelegated(caller, body.role)
    version, created = await PolicyService(session, actor=f"service:{caller}").assign(
        body.user, body.role, body.dom
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return AssignmentOut(**body.model_dump(), version=version)


@router.post("/enforce", response_model=EnforceResult)
async def enforce(body: EnforceRequest, snapshot: SnapshotDep, caller: Guard) -> EnforceResult:
    """Decide one request (sub, dom, obj, act), for a service checking its own endpoint."""
    return EnforceResult(
        allowed=snapshot.enforce(body.sub, body.dom, body.obj, body.act),
        version=snapshot.version,
    )
