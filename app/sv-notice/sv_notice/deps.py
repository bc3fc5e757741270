"""sv-notice's dependencies: services per request, and the caller of a WebSocket."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket
from starlette.requests import HTTPConnection

from edgelib.backends import BackendError
from edgelib.identity import GATEWAY_SERVICE, Identity, IdentityError
from edgelib.permissions import RequirePermission
from edgelib.replay import ReplayCache
from edgelib.signing import HEADER_IDENTITY, ServiceSigner, SignatureError
from edgelib.uow import SessionDep
from sv_notice.config import Settings
from sv_notice.delivery.dispatch import Dispatcher
from sv_notice.delivery.service import DeliveryService
from sv_notice.inbox.repository import InboxRepository
from sv_notice.inbox.service import InboxService
from sv_notice.preferences.repository import PreferenceRepository
from sv_notice.preferences.service import PreferenceService
from sv_notice.realtime.hub import RealtimeHub
from sv_notice.sending.routing import SendRouting
from sv_notice.sending.service import NoticeSender
from sv_notice.templates.repository import TemplateRepository
from sv_notice.templates.service import TemplateService


def _settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


def _templates(request: Request, session: SessionDep) -> TemplateService:
    return TemplateService(
        TemplateRepository(session),
        request.app.state.template_renderer,
        default_locale=_settings(request).default_locale,
    )


def _preferences(request: Request, session: SessionDep) -> PreferenceService:
    return PreferenceService(
        PreferenceRepository(session),
        TemplateRepository(session),
        allow_private_webhooks=_settings(request).private_webhooks_allowed,
        webhook_resolver=request.app.state.webhook_resolver,
    )


def _sender(
    request: Request,
    session: SessionDep,
    templates: Annotated[TemplateService, Depends(_templates)],
    preferences: Annotated[PreferenceService, Depends(_preferences)],
) -> NoticeSender:
    return NoticeSender(
        session,
        templates,
        preferences,
        available_channels=request.app.state.available_channels,
    )


def _inbox(session: SessionDep) -> InboxService:
    return InboxService(InboxRepository(session))


def _deliveries(session: SessionDep) -> DeliveryService:
    return DeliveryService(session)


def _dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


def _routing(request: Request) -> SendRouting:
    routing: SendRouting = request.app.state.send_routing
    return routing


def _hub(conn: HTTPConnection) -> RealtimeHub:
    hub: RealtimeHub = conn.app.state.realtime_hub
    return hub


TemplatesDep = Annotated[TemplateService, Depends(_templates)]
PreferencesDep = Annotated[PreferenceService, Depends(_preferences)]
SenderDep = Annotated[NoticeSender, Depends(_sender)]
InboxDep = Annotated[InboxService, Depends(_inbox)]
DeliveriesDep = Annotated[DeliveryService, Depends(_deliveries)]
DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]
HubDep = Annotated[RealtimeHub, Depends(_hub)]
RoutingDep = Annotated[SendRouting, Depends(_routing)]
SettingsDep = Annotated[Settings, Depends(_settings)]
#: The admin endpoints check notices:admin here as well as at the gateway.
NoticeAdmin = Annotated[Identity, RequirePermission("notices:admin")]


async def websocket_user(websocket: WebSocket) -> Identity | None:
    """The identity the gateway signed for this WebSocket upgrade (a GET), if valid and
    not a replay."""
    if HEADER_IDENTITY not in websocket.headers:
        return None
    signer: ServiceSigner = websocket.app.state.signer
    raw: bytes = websocket.scope.get("raw_path") or websocket.url.path.encode()
    target = raw.decode("latin-1")
    query: bytes = websocket.scope.get("query_string", b"")
    if query:
        target += "?" + query.decode("latin-1")
    replay: ReplayCache = websocket.app.state.replay
    try:
        caller = signer.verify_request(
            "GET", target, websocket.headers, None, require_body_digest=False
        )
        if caller.service != GATEWAY_SERVICE:
            return None
        identity = Identity.decode(websocket.headers[HEADER_IDENTITY])
        await replay.first_use(caller)
        return identity
    except (SignatureError, IdentityError, BackendError):
        return None
