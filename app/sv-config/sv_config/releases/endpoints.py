"""Releases and gray releases. The gateway asks ``config:publish`` for every change here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from edgelib.deps import CurrentUser
from sv_config.content import values_of
from sv_config.deps import ConfigPublisher, RefDep, ReleasesDep
from sv_config.models import Release
from sv_config.releases.service import GrayView
from sv_config.schemas import (
    INT32_MAX,
    GrayOut,
    GrayRequest,
    GrayTargets,
    GrayTargetsUpdate,
    PublishRequest,
    ReleaseDiff,
    ReleaseOut,
    ReleasePage,
    ReleaseSummary,
    RollbackRequest,
)

router = APIRouter(prefix="/api/v1/config", tags=["releases"])

RELEASES = "/releases/{environment}/{cluster}/{name}"
GRAY = "/gray/{environment}/{cluster}/{name}"


def release_out(release: Release) -> ReleaseOut:
    return ReleaseOut(
        **ReleaseSummary.model_validate(release).model_dump(),
        content=release.content,
        values=values_of(release.content),
    )


def gray_out(view: GrayView) -> GrayOut:
    return GrayOut(
        release=release_out(view.release),
        targets=GrayTargets.model_validate(view.gray.targets),
        base_release=view.base.number if view.base else None,
        started_by=view.gray.started_by,
        started_at=view.gray.started_at,
    )


@router.get(RELEASES, response_model=ReleasePage)
async def list_releases(
    ref: RefDep,
    service: ReleasesDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
) -> ReleasePage:
    """Release history, newest first; ``before`` pages back from a release number."""
    history = await service.history(ref, limit=limit, before=before)
    items = [ReleaseSummary.model_validate(r) for r in history.releases]
    return ReleasePage(
        items=items,
        current=history.current,
        gray=history.gray,
        next_before=items[-1].number if len(items) == limit and items[-1].number > 1 else None,
    )


@router.post(RELEASES, status_code=status.HTTP_201_CREATED, response_model=ReleaseOut)
async def publish(
    ref: RefDep, body: PublishRequest, service: ReleasesDep, user: ConfigPublisher
) -> ReleaseOut:
    """Publish the draft as the next release; every client receives it within a second."""
    return release_out(await service.publish(ref, body.comment, user))


@router.post(RELEASES + "/rollback", status_code=status.HTTP_201_CREATED, response_model=ReleaseOut)
async def rollback(
    ref: RefDep, body: RollbackRequest, service: ReleasesDep, user: ConfigPublisher
) -> ReleaseOut:
    """Restore an earlier release's exact content, as a new release."""
    return release_out(await service.rollback(ref, body.to, body.comment, user))


@router.get(RELEASES + "/diff", response_model=ReleaseDiff)
async def diff_releases(
    ref: RefDep,
    service: ReleasesDep,
    user: CurrentUser,
    old: Annotated[int, Query(alias="from", ge=1, le=INT32_MAX)],
    new: Annotated[int, Query(alias="to", ge=1, le=INT32_MAX)],
) -> ReleaseDiff:
    """Keys added, removed and changed from release ``from`` to release ``to``."""
    change = await service.diff(ref, old, new)
    return ReleaseDiff(
        from_release=old,
        to_release=new,
        added=change.added,
        removed=change.removed,
        changed=change.changed,
    )


@router.get(RELEASES + "/{number}", response_model=ReleaseOut)
async def get_release(
    ref: RefDep,
    number: Annotated[int, Path(ge=1, le=INT32_MAX)],
    service: ReleasesDep,
    user: CurrentUser,
) -> ReleaseOut:
    """One release with its full content."""
    return release_out(await service.get(ref, number))


@router.get(GRAY, response_model=GrayOut)
async def get_gray(ref: RefDep, service: ReleasesDep, user: CurrentUser) -> GrayOut:
    """The gray release running now, and who it is for."""
    return gray_out(await service.gray(ref))


@router.post(GRAY, status_code=status.HTTP_201_CREATED, response_model=GrayOut)
async def start_gray(
    ref: RefDep, body: GrayRequest, service: ReleasesDep, user: ConfigPublisher
) -> GrayOut:
    """Release the draft to chosen instances (by instance id, region or label) only."""
    targets = body.targets.model_dump()
    return gray_out(await service.start_gray(ref, targets, body.comment, user))


@router.put(GRAY + "/targets", response_model=GrayOut)
async def retarget_gray(
    ref: RefDep, body: GrayTargetsUpdate, service: ReleasesDep, user: ConfigPublisher
) -> GrayOut:
    """Change which instances run the gray release."""
    return gray_out(await service.retarget(ref, body.targets.model_dump(), user))


@router.post(GRAY + "/promote", status_code=status.HTTP_201_CREATED, response_model=ReleaseOut)
async def promote_gray(
    ref: RefDep, body: PublishRequest, service: ReleasesDep, user: ConfigPublisher
) -> ReleaseOut:
    """Give the gray release's content to every client, as a new release."""
    return release_out(await service.promote(ref, body.comment, user))


@router.post(GRAY + "/abort", response_model=ReleaseOut)
async def abort_gray(
    ref: RefDep, body: PublishRequest, service: ReleasesDep, user: ConfigPublisher
) -> ReleaseOut:
    """End the gray release; its instances return to the current release. Returns the gray one."""
    return release_out(await service.abort(ref, body.comment, user))
