"""Namespaces and drafts. The gateway asks ``config:edit`` for every change made here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from edgelib.deps import CurrentUser
from sv_config.content import values_of
from sv_config.deps import ConfigEditor, NamespacesDep, RefDep
from sv_config.models import Release
from sv_config.namespaces.service import DraftView, NamespaceView
from sv_config.schemas import (
    APP_PATTERN,
    CLUSTER_PATTERN,
    DiffOut,
    DraftEdit,
    DraftOut,
    Environment,
    ItemOut,
    ItemWrite,
    KeyPath,
    NamespaceCreate,
    NamespaceDetail,
    NamespaceOut,
    ReleaseRef,
    SchemaUpdate,
    Violation,
)

router = APIRouter(prefix="/api/v1/config", tags=["namespaces and drafts"])

NAMESPACE = "/namespaces/{environment}/{cluster}/{name}"
DRAFT = "/drafts/{environment}/{cluster}/{name}"


def _ref(release: Release | None) -> ReleaseRef | None:
    if release is None:
        return None
    return ReleaseRef(
        number=release.number,
        author=release.author,
        comment=release.comment,
        created_at=release.created_at,
    )


def namespace_out(view: NamespaceView) -> NamespaceOut:
    ns = view.namespace
    return NamespaceOut(
        name=ns.name,
        environment=ns.environment,
        cluster=ns.cluster,
        app=ns.app,
        description=ns.description,
        json_schema=ns.json_schema,
        created_by=ns.created_by,
        created_at=ns.created_at,
        current_release=_ref(view.current),
        gray_release=_ref(view.gray),
    )


def draft_out(view: DraftView) -> DraftOut:
    ns = view.namespace
    return DraftOut(
        namespace=ns.name,
        environment=ns.environment,
        cluster=ns.cluster,
        base_release=view.base.number if view.base else None,
        items=[ItemOut.model_validate(item) for item in view.items],
        changes=DiffOut(
            added=view.changes.added, removed=view.changes.removed, changed=view.changes.changed
        ),
        schema_violations=[Violation(**v) for v in view.violations],
    )


@router.get("/namespaces", response_model=list[NamespaceOut])
async def list_namespaces(
    service: NamespacesDep,
    user: CurrentUser,
    environment: Environment | None = None,
    cluster: Annotated[str | None, Query(pattern=CLUSTER_PATTERN)] = None,
    app: Annotated[str | None, Query(pattern=APP_PATTERN)] = None,
) -> list[NamespaceOut]:
    """Namespaces, optionally of one environment, cluster or application."""
    views = await service.list(environment=environment, cluster=cluster, app=app)
    return [namespace_out(v) for v in views]


@router.post("/namespaces", status_code=status.HTTP_201_CREATED, response_model=NamespaceOut)
async def create_namespace(
    body: NamespaceCreate, service: NamespacesDep, user: ConfigEditor
) -> NamespaceOut:
    """Create an empty namespace, with an optional JSON Schema its releases must satisfy."""
    return namespace_out(await service.create(body, user))


@router.get(NAMESPACE, response_model=NamespaceDetail)
async def get_namespace(ref: RefDep, service: NamespacesDep, user: CurrentUser) -> NamespaceDetail:
    """The namespace, its schema, and the values of its current release."""
    view = await service.describe(ref)
    return NamespaceDetail(
        **namespace_out(view).model_dump(),
        values=values_of(view.current.content) if view.current else {},
    )


@router.put(NAMESPACE + "/schema", response_model=NamespaceOut)
async def set_schema(
    ref: RefDep, body: SchemaUpdate, service: NamespacesDep, user: ConfigEditor
) -> NamespaceOut:
    """Replace (or, with null, drop) the schema; refused if the running release breaks it."""
    return namespace_out(await service.set_schema(ref, body.json_schema, user))


@router.get(DRAFT, response_model=DraftOut)
async def get_draft(ref: RefDep, service: NamespacesDep, user: CurrentUser) -> DraftOut:
    """The draft, what publishing it would change, and any schema violations it has."""
    return draft_out(await service.draft(ref))


@router.patch(DRAFT, response_model=DraftOut)
async def edit_draft(
    ref: RefDep, body: DraftEdit, service: NamespacesDep, user: ConfigEditor
) -> DraftOut:
    """Set and delete several keys at once, all or nothing."""
    return draft_out(await service.edit(ref, body, user))


@router.delete(DRAFT, response_model=DraftOut)
async def discard_draft(ref: RefDep, service: NamespacesDep, user: ConfigEditor) -> DraftOut:
    """Throw the draft's edits away: it becomes the current release's content again."""
    return draft_out(await service.discard(ref, user))


@router.put(DRAFT + "/items/{key}", response_model=ItemOut)
async def set_item(
    ref: RefDep, key: KeyPath, body: ItemWrite, service: NamespacesDep, user: ConfigEditor
) -> ItemOut:
    """Create or change one key of the draft."""
    return ItemOut.model_validate(await service.set_item(ref, key, body, user))


@router.delete(DRAFT + "/items/{key}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_item(
    ref: RefDep, key: KeyPath, service: NamespacesDep, user: ConfigEditor
) -> Response:
    """Remove one key from the draft."""
    await service.delete_item(ref, key, user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
