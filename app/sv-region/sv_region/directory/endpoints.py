"""The directory's internal API: only signed service callers reach it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from edgelib.deps import InternalCaller
from edgelib.uow import SessionDep
from sv_region.directory.repository import DirectoryRepository
from sv_region.directory.schemas import DirectoryEntryRead, ReservationCreate
from sv_region.directory.service import RegionDirectory

router = APIRouter(prefix="/internal/directory", tags=["directory (internal)"])


def _directory(request: Request, session: SessionDep) -> RegionDirectory:
    return RegionDirectory(
        DirectoryRepository(session), pending_ttl=request.app.state.settings.pending_ttl
    )


DirectoryDep = Annotated[RegionDirectory, Depends(_directory)]
#: Who may call what: sv-user registers, the gateway and sv-notice find a user's region,
#: auth-jwt (login), sv-money and sv-notice find a user by name.
Registrar = Annotated[str, InternalCaller(allowed={"sv-user"})]
ByIdCaller = Annotated[str, InternalCaller(allowed={"gateway-api", "sv-notice"})]
ByNameCaller = Annotated[str, InternalCaller(allowed={"auth-jwt", "sv-money", "sv-notice"})]


@router.post(
    "/reservations", status_code=status.HTTP_201_CREATED, response_model=DirectoryEntryRead
)
async def reserve(
    body: ReservationCreate, directory: DirectoryDep, caller: Registrar
) -> DirectoryEntryRead:
    """Reserve a username for a registration; assigns the region when none is asked for."""
    entry = await directory.reserve(
        body.username,
        region=body.region,
        user_id=str(body.user_id) if body.user_id else None,
        phone=body.phone,
        address=body.client_address,
    )
    return DirectoryEntryRead.model_validate(entry)


@router.post("/users/{user_id}/confirm", response_model=DirectoryEntryRead)
async def confirm(user_id: str, directory: DirectoryDep, caller: Registrar) -> DirectoryEntryRead:
    """Activate a reservation once its account exists."""
    return DirectoryEntryRead.model_validate(await directory.confirm(user_id))


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def release(user_id: str, directory: DirectoryDep, caller: Registrar) -> Response:
    """Release a pending reservation after a failed registration."""
    await directory.release(user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users/{user_id}", response_model=DirectoryEntryRead)
async def lookup(user_id: str, directory: DirectoryDep, caller: ByIdCaller) -> DirectoryEntryRead:
    """Where user ``user_id`` lives."""
    return DirectoryEntryRead.model_validate(await directory.lookup(user_id))


@router.get("/usernames/{username}", response_model=DirectoryEntryRead)
async def lookup_username(
    username: str, directory: DirectoryDep, caller: ByNameCaller
) -> DirectoryEntryRead:
    """Which user holds ``username``, and where they live."""
    return DirectoryEntryRead.model_validate(await directory.lookup_username(username))
