"""Tenants API: public under ``/api/v1/tenants`` (tenants:admin), and auth-jwt's check.

Platform administrators (active tenant ``default``, holding ``tenants:admin`` there)
create, list, change and disable tenants and manage any tenant's members. A tenant's
own admin (``tenants:admin`` in its domain) sees its tenant and manages its members;
another tenant is a ``404`` to it, as if it did not exist.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from auth_rbac.policy.deps import ChangeSessionDep, SnapshotDep, caller_domain
from auth_rbac.policy.schemas import NAME_PATTERN
from auth_rbac.tenants.exceptions import PlatformOnly, TenantNotFound
from auth_rbac.tenants.repository import MemberRow, TenantRow
from auth_rbac.tenants.schemas import (
    Member,
    MemberIn,
    MemberList,
    Tenant,
    TenantIn,
    TenantStatus,
    TenantUpdate,
)
from auth_rbac.tenants.scope import is_platform
from auth_rbac.tenants.service import TenantService
from edgelib.deps import CurrentUser, InternalCaller, SessionDep
from edgelib.identity import Identity
from edgelib.problems import Forbidden

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"])
internal_router = APIRouter(prefix="/internal/tenants", tags=["internal"])

TenantPath = Annotated[str, Path(pattern=NAME_PATTERN, max_length=128)]
UserPath = Annotated[str, Path(pattern=NAME_PATTERN, max_length=128)]
#: auth-jwt asks before it issues a token in a tenant.
TokenIssuer = Annotated[str, InternalCaller(allowed={"auth-jwt"})]


async def _tenant_admin(request: Request, identity: CurrentUser, snapshot: SnapshotDep) -> Identity:
    """The signed caller, holding tenants:admin in its own tenant (the gateway checks too)."""
    if not snapshot.enforce(identity.user_id, caller_domain(identity), "tenants", "admin"):
        raise Forbidden("this needs the permission tenants:admin")
    return identity


TenantAdmin = Annotated[Identity, Depends(_tenant_admin)]


def _platform(admin: Identity) -> None:
    if not is_platform(admin):
        raise PlatformOnly()


def _own(admin: Identity, tenant: str) -> None:
    """A tenant's admin reaches its own tenant only; others answer as if absent."""
    if not is_platform(admin) and admin.tenant != tenant:
        raise TenantNotFound(tenant)


def _out(row: TenantRow) -> Tenant:
    return Tenant(
        id=row.id,
        name=row.name,
        disabled=row.disabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _member(row: MemberRow) -> Member:
    return Member(tenant=row.tenant, user=row.user, created_at=row.created_at)


@router.post("", response_model=Tenant, status_code=status.HTTP_201_CREATED)
async def create_tenant(body: TenantIn, session: ChangeSessionDep, admin: TenantAdmin) -> Tenant:
    """Create a tenant: a new Casbin domain with its built-in admin role (platform admins)."""
    _platform(admin)
    return _out(await TenantService(session, actor=admin.user_id).create(body.id, body.name))


@router.get("", response_model=list[Tenant])
async def list_tenants(session: SessionDep, admin: TenantAdmin) -> list[Tenant]:
    """Every tenant (platform admins); a tenant's admin sees only its own."""
    rows = await TenantService(session, actor=admin.user_id).all()
    return [_out(row) for row in rows if is_platform(admin) or row.id == admin.tenant]


@router.get("/{tenant}", response_model=Tenant)
async def get_tenant(tenant: TenantPath, session: SessionDep, admin: TenantAdmin) -> Tenant:
    """One tenant."""
    _own(admin, tenant)
    return _out(await TenantService(session, actor=admin.user_id).get(tenant))


@router.patch("/{tenant}", response_model=Tenant)
async def update_tenant(
    tenant: TenantPath, body: TenantUpdate, session: ChangeSessionDep, admin: TenantAdmin
) -> Tenant:
    """Rename, disable or enable a tenant (platform admins). Disabled, nothing is allowed
    in its domain and no token is issued in it."""
    _platform(admin)
    row = await TenantService(session, actor=admin.user_id).update(
        tenant, name=body.name, disabled=body.disabled
    )
    return _out(row)


@router.get("/{tenant}/members", response_model=MemberList)
async def list_members(tenant: TenantPath, session: SessionDep, admin: TenantAdmin) -> MemberList:
    """The tenant's members."""
    _own(admin, tenant)
    rows = await TenantService(session, actor=admin.user_id).members(tenant)
    return MemberList(tenant=tenant, members=[_member(row) for row in rows])


@router.post("/{tenant}/members", response_model=Member, status_code=status.HTTP_201_CREATED)
async def add_member(
    tenant: TenantPath,
    body: MemberIn,
    response: Response,
    session: ChangeSessionDep,
    admin: TenantAdmin,
) -> Member:
    """Make a user a member (they may then log in with this tenant); 200 if already one."""
    _own(admin, tenant)
    row, created = await TenantService(session, actor=admin.user_id).add_member(tenant, body.user)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _member(row)


@router.delete("/{tenant}/members/{user}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(
    tenant: TenantPath, user: UserPath, session: ChangeSessionDep, admin: TenantAdmin
) -> None:
    """End a membership and every role the user held in the tenant."""
    _own(admin, tenant)
    await TenantService(session, actor=admin.user_id).remove_member(tenant, user)


@internal_router.get("/{tenant}/status", response_model=TenantStatus)
async def tenant_status(
    tenant: TenantPath,
    session: SessionDep,
    caller: TokenIssuer,
    user: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=128)] = None,
) -> TenantStatus:
    """Whether the tenant exists, is disabled, and has ``user`` as a member."""
    exists, disabled, member = await TenantService(session, actor=f"service:{caller}").status(
        tenant, user
    )
    return TenantStatus(tenant=tenant, exists=exists, disabled=disabled, member=member)
