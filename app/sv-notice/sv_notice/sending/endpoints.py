"""Sending: the admin's send, and the signed intake of platform events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncSession

from edgelib.deps import InternalCaller, SessionDep
from edgelib.problems import Problem
from edgelib.tracing import start_span
from sv_notice.delivery.dispatch import Dispatcher
from sv_notice.delivery.schemas import NoticeStatus
from sv_notice.delivery.service import DeliveryService
from sv_notice.deps import DispatcherDep, NoticeAdmin, RoutingDep, SenderDep, SettingsDep
from sv_notice.peers import SEND_PATH
from sv_notice.sending.schemas import (
    EventBatch,
    EventResult,
    EventsAccepted,
    ForwardedSend,
    SendIn,
)
from sv_notice.sending.service import NoticeSender, SendCommand

EVENTS_PATH = "/internal/events"

admin = APIRouter(prefix="/api/v1/notices/admin", tags=["admin"])
internal = APIRouter(tags=["internal"])
#: Another region's sv-notice hands over sends; auth-jwt and sv-money publish events.
PeerRegion = Annotated[str, InternalCaller(allowed={"sv-notice"})]
EventSource = Annotated[str, InternalCaller(allowed={"auth-jwt", "sv-money"})]


@admin.post(
    "/send",
    response_model=NoticeStatus,
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"description": "A notice with this dedup_key already exists."}},
)
async def send(
    body: SendIn,
    admin_user: NoticeAdmin,
    sender: SenderDep,
    dispatcher: DispatcherDep,
    routing: RoutingDep,
    session: SessionDep,
    response: Response,
) -> NoticeStatus | Response:
    """Send a notice to one user through the category's channels (202; 200 if a duplicate).

    A user of another region gets it from that region's sv-notice.
    """
    recipient = await routing.recipient(body.user_id, body.username)
    forwarded = ForwardedSend(
        **body.model_dump(exclude={"user_id", "username"}),
        user_id=recipient.user_id,
        source=f"admin:{admin_user.username}",
    )
    if routing.is_remote(recipient):
        return await routing.forward(recipient, forwarded)
    return await _send_here(forwarded, sender, dispatcher, session, response)


@internal.post(
    SEND_PATH,
    response_model=NoticeStatus,
    status_code=status.HTTP_202_ACCEPTED,
    responses={200: {"description": "A notice with this dedup_key already exists."}},
)
async def send_forwarded(
    body: ForwardedSend,
    caller: PeerRegion,
    sender: SenderDep,
    dispatcher: DispatcherDep,
    session: SessionDep,
    response: Response,
) -> NoticeStatus:
    """A send another region's sv-notice hands over, for a user who lives here."""
    return await _send_here(body, sender, dispatcher, session, response)


async def _send_here(
    body: ForwardedSend,
    sender: NoticeSender,
    dispatcher: Dispatcher,
    session: AsyncSession,
    response: Response,
) -> NoticeStatus:
    outcome = await sender.send(
        SendCommand(
            user_id=body.user_id,
            category=body.category,
            variables=body.variables,
            locale=body.locale,
            dedup_key=body.dedup_key,
            channels=body.channels,
            source=body.source,
        )
    )
    dispatcher.after_commit(session, outcome.queued)
    if outcome.duplicate:
        response.status_code = status.HTTP_200_OK
    return await DeliveryService(session).notice(outcome.notice_id, duplicate=outcome.duplicate)


@internal.post(EVENTS_PATH, response_model=EventsAccepted, status_code=status.HTTP_202_ACCEPTED)
async def intake_events(
    batch: EventBatch,
    caller: EventSource,
    sender: SenderDep,
    dispatcher: DispatcherDep,
    session: SessionDep,
    settings: SettingsDep,
) -> EventsAccepted:
    """Turn platform events into notices; each event is accepted, a duplicate, or rejected."""
    results: list[EventResult] = []
    for event in batch.events:
        if settings.region and event.region and event.region != settings.region:
            results.append(
                EventResult(
                    id=event.id,
                    status="rejected",
                    reason=f"user lives in {event.region}; this is {settings.region}",
                )
            )
            continue
        try:
            # The batch is shipped in the background; each event rejoins its own trace.
            with start_span(
                f"event {event.type}", parent=event.traceparent, kind=SpanKind.CONSUMER
            ):
                outcome = await sender.send(
                    SendCommand(
                        user_id=event.user_id,
                        category=event.type,
                        variables=event.data,
                        dedup_key=f"event:{event.id}",
                        source=f"event:{event.source or caller}",
                    )
                )
        except Problem as exc:
            results.append(EventResult(id=event.id, status="rejected", reason=exc.detail))
            continue
        dispatcher.after_commit(session, outcome.queued)
        results.append(
            EventResult(
                id=event.id,
                status="duplicate" if outcome.duplicate else "accepted",
                notice_id=outcome.notice_id,
            )
        )
    return EventsAccepted(results=results)
