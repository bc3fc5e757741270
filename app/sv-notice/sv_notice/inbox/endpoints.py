"""The in-app inbox of the calling user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from edgelib.deps import CurrentUser
from sv_notice.deps import InboxDep
from sv_notice.inbox.schemas import MarkedRead, NoticeOut, NoticePage, UnreadCount
from sv_notice.schemas import ResourceId

router = APIRouter(prefix="/api/v1/notices", tags=["inbox"])

NoticeId = Annotated[ResourceId, Path()]


@router.get("", response_model=NoticePage)
async def inbox(
    user: CurrentUser,
    inbox: InboxDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    unread_only: bool = False,
) -> NoticePage:
    """The caller's notices, newest first; follow ``next_cursor`` for older ones."""
    return await inbox.page(user.user_id, limit=limit, cursor=cursor, unread_only=unread_only)


@router.get("/unread-count", response_model=UnreadCount)
async def unread_count(user: CurrentUser, inbox: InboxDep) -> UnreadCount:
    """How many of the caller's notices are unread."""
    return await inbox.unread(user.user_id)


@router.post("/read-all", response_model=MarkedRead)
async def read_all(user: CurrentUser, inbox: InboxDep) -> MarkedRead:
    """Mark every notice of the caller read."""
    return await inbox.mark_all_read(user.user_id)


@router.get("/{notice_id}", response_model=NoticeOut)
async def notice(notice_id: NoticeId, user: CurrentUser, inbox: InboxDep) -> NoticeOut:
    """One notice of the caller's inbox."""
    return await inbox.get(user.user_id, notice_id)


@router.post("/{notice_id}/read", response_model=NoticeOut)
async def read(notice_id: NoticeId, user: CurrentUser, inbox: InboxDep) -> NoticeOut:
    """Mark one notice read."""
    return await inbox.mark_read(user.user_id, notice_id)
