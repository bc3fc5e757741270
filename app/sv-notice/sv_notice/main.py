"""sv-notice app: ``create_app()`` and its lifespan."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpcore
from fastapi import FastAPI

from edgelib.app import create_service_app, default_database_url, default_schema
from edgelib.client import ServiceClient
from edgelib.peers import DirectoryClient
from edgelib.settings import ServiceSettings, own_settings
from edgelib.signing import ServiceSigner
from sv_notice.config import Settings
from sv_notice.delivery import endpoints as delivery_endpoints
from sv_notice.delivery.addresses import Resolver, system_resolver
from sv_notice.delivery.channels import Channel, RealtimeChannel
from sv_notice.delivery.dispatch import Dispatcher
from sv_notice.delivery.email import EmailChannel, SmtpServer
from sv_notice.delivery.queue import DeliveryQueue, MemoryQueue, RetryPolicy
from sv_notice.delivery.redis_queue import RedisStreamQueue
from sv_notice.delivery.webhook import WebhookChannel, webhook_pool
from sv_notice.delivery.worker import DeliveryWorker
from sv_notice.inbox import endpoints as inbox_endpoints
from sv_notice.peers import NoticePeers
from sv_notice.preferences import endpoints as preference_endpoints
from sv_notice.realtime import endpoints as realtime_endpoints
from sv_notice.realtime.hub import RealtimeHub
from sv_notice.sending import endpoints as sending_endpoints
from sv_notice.sending.routing import SendRouting
from sv_notice.templates import endpoints as template_endpoints
from sv_notice.templates.renderer import TemplateRenderer

MIGRATIONS = Path(__file__).parent / "migrations"


def queue_namespace(settings: Settings) -> str:
    """Redis key prefix of this region's queue and realtime channel.

    Queue entries point at rows of one database, so by default the namespace is
    derived from that database (URL and schema): two stacks sharing a Redis never
    take each other's work.
    """
    if settings.queue_namespace:
        return settings.queue_namespace
    database = settings.database_url or default_database_url(settings)
    schema = settings.database_schema or default_schema(settings)
    digest = hashlib.sha256(f"{database}|{schema}".encode()).hexdigest()[:12]
    return f"edge:notice:{settings.region or 'default'}:{digest}"


def _channels(
    settings: Settings, hub: RealtimeHub, webhooks: httpcore.AsyncConnectionPool
) -> dict[str, Channel]:
    channels: dict[str, Channel] = {
        "realtime": RealtimeChannel(hub),
        "webhook": WebhookChannel(webhooks, timeout=settings.webhook_timeout),
    }
    if settings.smtp_host:
        channels["email"] = EmailChannel(
            SmtpServer(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.mail_from,
                username=settings.smtp_username,
                password=settings.smtp_password,
                starttls=settings.smtp_starttls,
                ssl=settings.smtp_ssl,
                timeout=settings.smtp_timeout,
            )
        )
    return channels


def _routing(settings: Settings, signer: ServiceSigner) -> SendRouting:
    def client(service: str, urls: str) -> ServiceClient:
        bases = [u.strip() for u in urls.split(",") if u.strip()]
        return ServiceClient(bases, signer=signer.to(service), timeout=settings.peer_timeout)

    directory = (
        DirectoryClient(client("sv-region", settings.sv_region_url))
        if settings.sv_region_url
        else None
    )
    peers = NoticePeers(
        {
            region: client("sv-notice", urls)
            for region, urls in settings.peers.items()
            if urls.strip()
        }
    )
    return SendRouting(settings.region, directory, peers)


def create_app(
    base: ServiceSettings | None = None, *, webhook_resolver: Resolver = system_resolver
) -> FastAPI:
    """sv-notice; ``webhook_resolver`` answers the addresses of webhook hosts (DNS by default)."""
    settings = own_settings(base, Settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        namespace = queue_namespace(settings)
        async with AsyncExitStack() as stack:
            hub = RealtimeHub(
                app.state.backend,
                f"{namespace}:realtime",
                client_queue=settings.realtime_client_queue,
            )
            await hub.start()
            stack.push_async_callback(hub.close)
            queue: DeliveryQueue
            if settings.uses_redis_queue:
                queue = RedisStreamQueue(
                    settings.redis_url,
                    namespace,
                    consumer=settings.instance_id,
                    claim_idle=settings.lease_seconds,
                )
            else:
                queue = MemoryQueue()
            await queue.start()
            stack.push_async_callback(queue.close)
            renderer = TemplateRenderer(settings.render_limits)
            stack.push_async_callback(renderer.aclose)
            app.state.template_renderer = renderer
            webhooks = webhook_pool(
                timeout=settings.webhook_timeout,
                allow_private=settings.private_webhooks_allowed,
                resolver=app.state.webhook_resolver,
            )
            stack.push_async_callback(webhooks.aclose)
            channels = _channels(settings, hub, webhooks)
            dispatcher = Dispatcher(queue)
            stack.push_async_callback(dispatcher.drain)
            worker = DeliveryWorker(
                app.state.database,
                queue,
                channels,
                RetryPolicy(settings.retry_base, settings.retry_max, settings.max_attempts),
                owner=settings.instance_id,
                lease=settings.lease_seconds,
                concurrency=settings.workers,
                sweep_interval=settings.sweep_interval,
                sweep_grace=max(5.0, settings.lease_seconds / 2),
            )
            app.state.send_routing = _routing(settings, app.state.signer)
            stack.push_async_callback(app.state.send_routing.aclose)
            app.state.realtime_hub = hub
            app.state.dispatcher = dispatcher
            app.state.delivery_queue = queue
            app.state.delivery_worker = worker
            app.state.available_channels = frozenset({"in_app", *channels})
            await worker.start()
            stack.push_async_callback(worker.stop)
            yield

    app = create_service_app(
        settings,
        title="sv-notice",
        description="Notifications: inbox, realtime push, email and webhooks.",
        migrations=MIGRATIONS,
        lifespan=lifespan,
        api_prefix="/api/v1/notices",
    )
    app.state.webhook_resolver = webhook_resolver
    app.include_router(sending_endpoints.internal)
    # Fixed paths before the inbox's /{notice_id}.
    app.include_router(sending_endpoints.admin)
    app.include_router(template_endpoints.router)
    app.include_router(delivery_endpoints.router)
    app.include_router(preference_endpoints.router)
    app.include_router(realtime_endpoints.router)
    app.include_router(inbox_endpoints.router)
    return app
