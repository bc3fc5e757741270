"""Delivery status and dead letters (administrators; the gateway requires ``notices:admin``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from edgelib.uow import SessionDep
from sv_notice.delivery.schemas import DeliveryOut, DeliveryPage, NoticeStatus
from sv_notice.deps import DeliveriesDep, DispatcherDep, NoticeAdmin
from sv_notice.schemas import Channel, DeliveryStatus, ResourceId, UserId

router = APIRouter(prefix="/api/v1/notices/admin", tags=["admin"])

Id = Annotated[ResourceId, Path()]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.get("/notices/{notice_id}", response_model=NoticeStatus)
async def notice_status(notice_id: Id, _admin: NoticeAdmin, service: DeliveriesDep) -> NoticeStatus:
    """A notice and the delivery status of each of its channels."""
    return await service.notice(notice_id)


@router.get("/deliveries", response_model=DeliveryPage)
async def deliveries(
    _admin: NoticeAdmin,
    service: DeliveriesDep,
    status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    channel: Channel | None = None,
    user_id: Annotated[UserId | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> DeliveryPage:
    """Deliveries by status, channel or user, most recently changed first."""
    return await service.page(
        limit=limit, cursor=cursor, status=status_, channel=channel, user_id=user_id
    )


@router.get("/deliveries/{delivery_id}", response_model=DeliveryOut)
async def delivery(delivery_id: Id, _admin: NoticeAdmin, service: DeliveriesDep) -> DeliveryOut:
    """One delivery."""
    return await service.get(delivery_id)


@router.get("/dead-letters", response_model=DeliveryPage)
async def dead_letters(
    _admin: NoticeAdmin,
    service: DeliveriesDep,
    channel: Channel | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> DeliveryPage:
    """Deliveries that failed for good, with the reason, newest first."""
    return await service.page(limit=limit, cursor=cursor, status="failed", channel=channel)


@router.post(
    "/dead-letters/{delivery_id}/replay",
    response_model=DeliveryOut,
    status_code=status.HTTP_202_ACCEPTED,
)
async def replay(
    delivery_id: Id,
    _admin: NoticeAdmin,
    service: DeliveriesDep,
    dispatcher: DispatcherDep,
    session: SessionDep,
) -> DeliveryOut:
    """Queue a dead-lettered delivery again, with a fresh attempt budget."""
    delivery = await service.replay(delivery_id)
    dispatcher.queue_after_commit(session, [delivery.id])
    return delivery
