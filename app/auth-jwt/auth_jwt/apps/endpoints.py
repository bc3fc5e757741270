"""Apps API under ``/api/v1/auth/apps``: apps:admin in the caller's active tenant.

A platform administrator (tenant ``default``) manages any tenant's apps; a tenant's
admin only its own tenant's, and another tenant's app answers 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from auth_jwt.apps.repository import AppRepository
from auth_jwt.apps.schemas import (
    TENANT_PATTERN,
    App,
    AppIn,
    AppList,
    AppUpdate,
    AppWithSecret,
    RotatedSecret,
    SecretRotation,
)
from auth_jwt.apps.service import AppService
from edgelib.identity import Identity
from edgelib.permissions import RequirePermission
from edgelib.uow import SessionDep

router = APIRouter(prefix="/api/v1/auth/apps", tags=["apps"])

AppAdmin = Annotated[Identity, RequirePermission("apps:admin", in_tenant=True)]
ClientIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,32}$")]
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def app_service(request: Request, session: SessionDep) -> AppService:
    state = request.app.state
    return AppService(
        AppRepository(session),
        tenants=state.tenants,
        policy=state.token_policy,
        keys=state.keys,
        notices=state.revocation_notices,
        region=state.app_region,
    )


AppServiceDep = Annotated[AppService, Depends(app_service)]


@router.post("", response_model=AppWithSecret, status_code=status.HTTP_201_CREATED)
async def create_app(
    body: AppIn, admin: AppAdmin, service: AppServiceDep, response: Response
) -> AppWithSecret:
    """Create an app of a tenant; the answer holds its client secret, shown this once.

    The app holds no permission until roles are assigned to its ``client_id`` in its
    tenant's domain (``POST /api/v1/rbac/assignments``).
    """
    app, secret = await service.create(admin, body.name, body.tenant)
    response.headers.update(NO_STORE)
    return AppWithSecret(**App.model_validate(app).model_dump(), client_secret=secret)


@router.get("", response_model=AppList)
async def list_apps(
    admin: AppAdmin,
    service: AppServiceDep,
    tenant: Annotated[str | None, Query(pattern=TENANT_PATTERN)] = None,
) -> AppList:
    """The apps of a tenant (a tenant's admin: its own; platform admins: any, or all)."""
    return AppList(items=[App.model_validate(a) for a in await service.of_tenant(admin, tenant)])


@router.get("/{client_id}", response_model=App)
async def get_app(client_id: ClientIdPath, admin: AppAdmin, service: AppServiceDep) -> App:
    """One app (never its secrets)."""
    return App.model_validate(await service.get(admin, client_id))


@router.patch("/{client_id}", response_model=App)
async def update_app(
    client_id: ClientIdPath, body: AppUpdate, admin: AppAdmin, service: AppServiceDep
) -> App:
    """Rename, disable or enable an app. Disabled, it gets no token, and its tokens stop
    working at every gateway within a second."""
    app = await service.update(admin, client_id, name=body.name, disabled=body.disabled)
    return App.model_validate(app)


@router.post("/{client_id}/secret", response_model=RotatedSecret)
async def rotate_secret(
    client_id: ClientIdPath,
    admin: AppAdmin,
    service: AppServiceDep,
    response: Response,
    body: SecretRotation | None = None,
) -> RotatedSecret:
    """Issue a new client secret (shown once). The earlier secrets keep working for
    ``overlap_seconds`` (default 3600), so clients can switch without downtime."""
    overlap = (body or SecretRotation()).overlap_seconds
    secret, until = await service.rotate(admin, client_id, overlap)
    response.headers.update(NO_STORE)
    return RotatedSecret(
        client_id=client_id, client_secret=secret, previous_secrets_expire_at=until
    )
