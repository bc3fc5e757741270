"""Public policy API under ``/api/v1/rbac`` (rbac:admin, checked by the gateway and here).

A caller whose active tenant is not ``default`` administers its own tenant's domain
only: any other ``dom`` is ``403 outside-tenant`` (``tenants.scope.in_scope``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from auth_rbac.policy.deps import PolicyAdmin, PolicyChangeSession, PolicySyncDep, SnapshotDep
from auth_rbac.policy.enforcer import DEFAULT_DOMAIN, PolicySnapshot
from auth_rbac.policy.repository import RoleRow
from auth_rbac.policy.schemas import (
    NAME_PATTERN,
    Assignment,
    AssignmentOut,
    BatchEnforceRequest,
    BatchEnforceResult,
    BatchResult,
    EffectivePermission,
    EnforceRequest,
    EnforceResult,
    Permission,
    PolicyRule,
    PolicyRuleOut,
    Role,
    RoleIn,
    RoleMembers,
    UserPermissions,
    UserRoles,
)
from auth_rbac.policy.service import PolicyService
from auth_rbac.tenants.scope import in_scope
from edgelib.uow import SessionDep

router = APIRouter(prefix="/api/v1/rbac", tags=["rbac"])

DomainQuery = Annotated[str, Query(pattern=NAME_PATTERN, max_length=128)]
UserPath = Annotated[str, Path(pattern=NAME_PATTERN, max_length=128)]
RolePath = Annotated[str, Path(pattern=NAME_PATTERN, max_length=128)]


#: ``members=false``: leave each role's member list out (a role may have 10,000 members).
WithMembers = Annotated[bool, Query(description="false: members left out, only counted")]


def _role(row: RoleRow, snapshot: PolicySnapshot, with_members: bool = True) -> Role:
    members = snapshot.members_of(row.name, row.domain)
    return Role(
        name=row.name,
        dom=row.domain,
        description=row.description,
        builtin=row.builtin,
        created_at=row.created_at,
        permissions=[
            Permission(obj=o, act=a) for o, a in snapshot.permissions_of(row.name, row.domain)
        ],
        members=members if with_members else [],
        member_count=len(members),
    )


@router.post("/policies", response_model=PolicyRuleOut, status_code=status.HTTP_201_CREATED)
async def grant(
    body: PolicyRule, response: Response, session: PolicyChangeSession, admin: PolicyAdmin
) -> PolicyRuleOut:
    """Grant a permission (sub, dom, obj, act); 200 when it was already granted."""
    in_scope(admin, body.dom)
    version, created = await PolicyService(session, actor=admin.user_id).grant(
        body.sub, body.dom, body.obj, body.act
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return PolicyRuleOut(**body.model_dump(), version=version)


@router.delete("/policies", status_code=status.HTTP_204_NO_CONTENT)
async def revoke(body: PolicyRule, session: PolicyChangeSession, admin: PolicyAdmin) -> None:
    """Revoke a permission given with the same body."""
    in_scope(admin, body.dom)
    await PolicyService(session, actor=admin.user_id).revoke(body.sub, body.dom, body.obj, body.act)


@router.post("/assignments", response_model=AssignmentOut, status_code=status.HTTP_201_CREATED)
async def assign(
    body: Assignment, response: Response, session: PolicyChangeSession, admin: PolicyAdmin
) -> AssignmentOut:
    """Assign an existing role to a user in a domain; 200 when already assigned."""
    in_scope(admin, body.dom)
    version, created = await PolicyService(session, actor=admin.user_id).assign(
        body.user, body.role, body.dom
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return AssignmentOut(**body.model_dump(), version=version)


@router.delete("/assignments", status_code=status.HTTP_204_NO_CONTENT)
async def unassign(body: Assignment, session: PolicyChangeSession, admin: PolicyAdmin) -> None:
    """Take a role from a user, given the same body."""
    in_scope(admin, body.dom)
    await PolicyService(session, actor=admin.user_id).unassign(body.user, body.role, body.dom)


@router.post("/enforce", response_model=EnforceResult)
async def enforce(body: EnforceRequest, snapshot: SnapshotDep, admin: PolicyAdmin) -> EnforceResult:
    """Decide one request (sub, dom, obj, act) with this instance's policy."""
    in_scope(admin, body.dom)
    return EnforceResult(
        allowed=snapshot.enforce(body.sub, body.dom, body.obj, body.act),
        version=snapshot.version,
    )


@router.post("/enforce/batch", response_model=BatchEnforceResult)
async def enforce_batch(
    body: BatchEnforceRequest, snapshot: SnapshotDep, admin: PolicyAdmin
) -> BatchEnforceResult:
    """Decide up to 1,000 requests against one policy version, in order."""
    for request in body.requests:
        in_scope(admin, request.dom)
    return BatchEnforceResult(
        results=[
            BatchResult(allowed=snapshot.enforce(r.sub, r.dom, r.obj, r.act)) for r in body.requests
        ],
        version=snapshot.version,
    )


@router.get("/users/{user}/roles", response_model=UserRoles)
async def user_roles(
    snapshot: SnapshotDep,
    admin: PolicyAdmin,
    user: UserPath,
    dom: DomainQuery = DEFAULT_DOMAIN,
) -> UserRoles:
    """The roles a user holds in a domain, directly and through inheritance."""
    in_scope(admin, dom)
    return UserRoles(
        user=user,
        dom=dom,
        roles=snapshot.roles_for(user, dom),
        implicit_roles=snapshot.implicit_roles_for(user, dom),
    )


@router.get("/users/{user}/permissions", response_model=UserPermissions)
async def user_permissions(
    snapshot: SnapshotDep,
    admin: PolicyAdmin,
    user: UserPath,
    dom: DomainQuery = DEFAULT_DOMAIN,
) -> UserPermissions:
    """Everything a user may do in a domain, and which grant gives it."""
    in_scope(admin, dom)
    return UserPermissions(
        user=user,
        dom=dom,
        permissions=[
            EffectivePermission(obj=o, act=a, via=via)
            for o, a, via in snapshot.effective_permissions(user, dom)
        ],
    )


@router.get("/roles", response_model=list[Role])
async def list_roles(
    session: SessionDep,
    sync: PolicySyncDep,
    admin: PolicyAdmin,
    dom: DomainQuery = DEFAULT_DOMAIN,
    members: WithMembers = True,
) -> list[Role]:
    """The roles of a domain with their permissions and direct members."""
    in_scope(admin, dom)
    rows = await PolicyService(session, actor="").list_roles(dom)
    snapshot = sync.snapshot
    return [_role(row, snapshot, members) for row in rows]


@router.post("/roles", response_model=Role, status_code=status.HTTP_201_CREATED)
async def create_role(
    body: RoleIn, session: PolicyChangeSession, sync: PolicySyncDep, admin: PolicyAdmin
) -> Role:
    """Create a role in a domain (it holds nothing until granted permissions)."""
    in_scope(admin, body.dom)
    row = await PolicyService(session, actor=admin.user_id).create_role(
        body.name, body.dom, body.description
    )
    return _role(row, sync.snapshot)


@router.get("/roles/{name}", response_model=Role)
async def get_role(
    session: SessionDep,
    sync: PolicySyncDep,
    admin: PolicyAdmin,
    name: RolePath,
    dom: DomainQuery = DEFAULT_DOMAIN,
    members: WithMembers = True,
) -> Role:
    """One role with its permissions and direct members."""
    in_scope(admin, dom)
    row = await PolicyService(session, actor="").get_role(name, dom)
    return _role(row, sync.snapshot, members)


@router.get("/roles/{name}/members", response_model=RoleMembers)
async def role_members(
    session: SessionDep,
    sync: PolicySyncDep,
    admin: PolicyAdmin,
    name: RolePath,
    dom: DomainQuery = DEFAULT_DOMAIN,
    q: Annotated[str, Query(max_length=128)] = "",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RoleMembers:
    """A role's direct members by id, one page at a time; ``q`` keeps ids containing it."""
    in_scope(admin, dom)
    row = await PolicyService(session, actor="").get_role(name, dom)
    members = sorted(sync.snapshot.members_of(row.name, row.domain))
    if q:
        members = [m for m in members if q.lower() in m.lower()]
    return RoleMembers(
        role=row.name,
        dom=row.domain,
        items=members[offset : offset + limit],
        total=len(members),
        offset=offset,
        limit=limit,
    )


@router.delete("/roles/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_role(
    session: PolicyChangeSession,
    admin: PolicyAdmin,
    name: RolePath,
    dom: DomainQuery = DEFAULT_DOMAIN,
) -> None:
    """Delete a role, its permissions and its assignments (built-in roles stay)."""
    in_scope(admin, dom)
    await PolicyService(session, actor=admin.user_id).delete_role(name, dom)
