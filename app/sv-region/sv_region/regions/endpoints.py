"""The regions admin API (the gateway requires regions:read / regions:write)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from edgelib.deps import InternalCaller
from edgelib.identity import Identity
from edgelib.permissions import RequirePermission
from edgelib.uow import SessionDep
from sv_region.directory.repository import DirectoryRepository
from sv_region.directory.schemas import (
    REGION_PATTERN,
    DirectoryEntryRead,
    DirectoryPage,
)
from sv_region.directory.service import RegionDirectory
from sv_region.regions.events import DIRECTORY_CHANNEL, REGIONS_CHANNEL, announce
from sv_region.regions.repository import RegionRepository
from sv_region.regions.schemas import (
    REGION_NAME,
    Assignment,
    RegionRead,
    RegionWrite,
    RuleCreate,
    RuleRead,
)
from sv_region.regions.service import RegionCatalog

router = APIRouter(prefix="/api/v1/regions", tags=["regions"])
#: Signed service callers only: the gateway follows each region's ``discovery`` value.
internal_router = APIRouter(prefix="/internal/regions", tags=["regions (internal)"])

RegionName = Annotated[str, Path(pattern=REGION_NAME)]


def _catalog(session: SessionDep) -> RegionCatalog:
    return RegionCatalog(RegionRepository(session))


CatalogDep = Annotated[RegionCatalog, Depends(_catalog)]
#: Checked here as well as at the gateway: a wrong route table must not open these.
RegionReader = Annotated[Identity, RequirePermission("regions:read")]
RegionWriter = Annotated[Identity, RequirePermission("regions:write")]
SourceReader = Annotated[str, InternalCaller(allowed={"gateway-api"})]


class Move(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str = Field(pattern=REGION_NAME)


@router.get("", response_model=list[RegionRead])
async def list_regions(catalog: CatalogDep, user: RegionReader) -> list[RegionRead]:
    """Every region with its status, endpoints, discovery source and weight."""
    return [RegionRead.model_validate(r) for r in await catalog.all()]


@router.get("/rules", response_model=list[RuleRead])
async def list_rules(catalog: CatalogDep, user: RegionReader) -> list[RuleRead]:
    """Assignment rules in the order they are tried."""
    return [RuleRead.model_validate(r) for r in await catalog.rules()]


@router.post("/rules", response_model=RuleRead, status_code=status.HTTP_201_CREATED)
async def add_rule(
    body: RuleCreate, catalog: CatalogDep, session: SessionDep, request: Request, user: RegionWriter
) -> RuleRead:
    """Send new users whose phone prefix or client network matches to a region."""
    rule = RuleRead.model_validate(await catalog.add_rule(body))
    announce(session, request.app.state.backend, REGIONS_CHANNEL, body.region)
    return rule


@router.delete("/rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(
    rule_id: Annotated[int, Path(ge=1, le=2**31 - 1)],  # the column is a PostgreSQL integer
    catalog: CatalogDep,
    session: SessionDep,
    request: Request,
    user: RegionWriter,
) -> Response:
    """Remove an assignment rule."""
    await catalog.delete_rule(rule_id)
    announce(session, request.app.state.backend, REGIONS_CHANNEL, "*")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/assignment", response_model=Assignment)
async def preview_assignment(
    catalog: CatalogDep,
    user: RegionReader,
    username: str = Query(min_length=1, max_length=64),
    phone: str | None = Query(None, max_length=32),
    address: str | None = Query(None, max_length=64),
) -> Assignment:
    """Which region a new user with these hints would get (nothing is reserved)."""
    region, rule = await catalog.assign(username.lower(), phone=phone, address=address)
    return Assignment(region=region, rule=rule)


@router.put("/users/{user_id}/region", response_model=DirectoryEntryRead)
async def move_user(
    user_id: str, body: Move, session: SessionDep, request: Request, user: RegionWriter
) -> DirectoryEntryRead:
    """Point a user at another region; gateways drop their cached answer at once.

    This moves the directory entry only: the user's data in the old region's
    services must be moved by those services.
    """
    await RegionCatalog(RegionRepository(session)).get(body.region)
    directory = _directory(request, session)
    entry = await directory.move(user_id, body.region)
    result = DirectoryEntryRead.model_validate(entry)
    announce(session, request.app.state.backend, DIRECTORY_CHANNEL, user_id)
    return result


def _directory(request: Request, session: SessionDep) -> RegionDirectory:
    return RegionDirectory(
        DirectoryRepository(session), pending_ttl=request.app.state.settings.pending_ttl
    )


DirectoryDep = Annotated[RegionDirectory, Depends(_directory)]


@router.get("/directory", response_model=DirectoryPage)
async def search_directory(
    directory: DirectoryDep,
    user: RegionReader,
    q: Annotated[str, Query(max_length=64)] = "",
    region: Annotated[str | None, Query(pattern=REGION_PATTERN)] = None,
    after: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DirectoryPage:
    """Search every region's users: a user id finds that user, other text is a username
    prefix; by username, one page at a time (``after`` is the last page's ``next``)."""
    entries, after_next = await directory.search(q, region=region, after=after, limit=limit)
    return DirectoryPage(
        items=[DirectoryEntryRead.model_validate(e) for e in entries], next=after_next
    )


@router.get("/directory/{user_id}", response_model=DirectoryEntryRead)
async def directory_entry(
    user_id: Annotated[str, Path(max_length=64)], directory: DirectoryDep, user: RegionReader
) -> DirectoryEntryRead:
    """One user's directory entry: home region and status (404 when unknown)."""
    return DirectoryEntryRead.model_validate(await directory.entry(user_id))


@router.get("/{name}", response_model=RegionRead)
async def get_region(name: RegionName, catalog: CatalogDep, user: RegionReader) -> RegionRead:
    """One region."""
    return RegionRead.model_validate(await catalog.get(name))


@router.put(
    "/{name}",
    response_model=RegionRead,
    responses={201: {"model": RegionRead, "description": "The region was created."}},
)
async def put_region(
    name: RegionName,
    body: RegionWrite,
    catalog: CatalogDep,
    session: SessionDep,
    request: Request,
    response: Response,
    user: RegionWriter,
) -> RegionRead:
    """Create or replace a region (201 when created)."""
    region, created = await catalog.put(name, body)
    result = RegionRead.model_validate(region)
    if created:
        response.status_code = status.HTTP_201_CREATED
    announce(session, request.app.state.backend, REGIONS_CHANNEL, name)
    return result


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_region(
    name: RegionName, catalog: CatalogDep, session: SessionDep, request: Request, user: RegionWriter
) -> Response:
    """Delete a region nobody lives in and no rule points at."""
    await catalog.delete(name)
    announce(session, request.app.state.backend, REGIONS_CHANNEL, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@internal_router.get("", response_model=list[RegionRead])
async def list_region_sources(catalog: CatalogDep, caller: SourceReader) -> list[RegionRead]:
    """Every region with its ``discovery`` source: what the gateway's pools follow.

    Changes are announced on ``edge.regions`` (the region's name) once committed.
    """
    return [RegionRead.model_validate(r) for r in await catalog.all()]
