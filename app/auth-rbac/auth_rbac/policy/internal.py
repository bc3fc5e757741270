"""Signed service-to-service endpoints: the policy for gateways, assignments on events."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from auth_rbac.policy.deps import ChangeSessionDep, PolicySyncDep
from auth_rbac.policy.enforcer import model_text
from auth_rbac.policy.schemas import Assignment, AssignmentOut, PolicyDocument
from auth_rbac.policy.service import PolicyService
from edgelib.deps import InternalCaller

router = APIRouter(prefix="/internal", tags=["internal"])


@router.get("/policy", response_model=PolicyDocument)
async def policy(
    caller: InternalCaller, sync: PolicySyncDep, since: int | None = Query(None, ge=0)
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
    body: Assignment, response: Response, session: ChangeSessionDep, caller: InternalCaller
) -> AssignmentOut:
    """Assign a role on another service's behalf (sv-user on registration, auth-jwt for the
    bootstrap admin). Idempotent: 200 when the assignment already exists."""
    version, created = await PolicyService(session, actor=f"service:{caller}").assign(
        body.user, body.role, body.dom
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return AssignmentOut(**body.model_dump(), version=version)
