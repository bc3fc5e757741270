"""sv-money app: ``create_app()`` and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
from fastapi import FastAPI

from edgelib.app import create_service_app
from edgelib.client import ServiceClient
from edgelib.db import Database
from edgelib.events import EventPublisher, HttpEventSink
from edgelib.peers import DirectoryClient
from edgelib.rpcserver import grpc_listener
from edgelib.settings import ServiceSettings, own_settings
from edgelib.signing import ServiceSigner
from edgelib.uow import Transactions
from sv_money.audit.endpoints import internal_router as audit_internal_router
from sv_money.audit.endpoints import router as audit_router
from sv_money.audit.service import AuditService
from sv_money.config import Settings, url_list
from sv_money.crossregion.endpoints import router as crossregion_router
from sv_money.crossregion.service import CrossRegionService
from sv_money.deps import provide
from sv_money.holds.endpoints import router as holds_router
from sv_money.holds.service import HoldService
from sv_money.idempotency.service import forget_expired
from sv_money.notices import TransferNotices
from sv_money.peers import MoneyPeers
from sv_money.rpc.gen.wallet_pb2_grpc import add_WalletServicer_to_server
from sv_money.rpc.wallet import WalletServicer
from sv_money.topups.endpoints import internal_router as topups_internal_router
from sv_money.topups.endpoints import router as topups_router
from sv_money.topups.service import TopupService
from sv_money.transfers.endpoints import router as transfers_router
from sv_money.transfers.service import TransferService
from sv_money.wallet.endpoints import router as wallet_router
from sv_money.wallet.service import WalletService
from sv_money.workers import HoldExpiry, OutboxRecovery, every

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True, slots=True)
class Services:
    """sv-money's services, built once in the lifespan (they hold no request state).

    Each endpoint depends on its own service only (see :mod:`sv_money.deps`); this bundle
    is for the lifespan, the workers and the command line.
    """

    transactions: Transactions
    wallet: WalletService
    transfers: TransferService
    holds: HoldService
    topups: TopupService
    crossregion: CrossRegionService
    audit: AuditService


@asynccontextmanager
async def open_services(
    settings: Settings,
    database: Database,
    signer: ServiceSigner,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Services]:
    """sv-money's services on ``database``, with clients for sv-region and the other regions."""
    region = settings.region
    if not region:
        raise ValueError("sv-money serves one region: set SV_MONEY_REGION")
    async with AsyncExitStack() as stack:

        def client(
            service: str, urls: str, timeout: float = settings.peer_timeout
        ) -> ServiceClient:
            made = ServiceClient(
                url_list(urls),
                signer=signer.to(service),
                timeout=timeout,
                retries=1,
                transport=transport,
            )
            stack.push_async_callback(made.aclose)
            return made

        directory = DirectoryClient(
            client("sv-region", settings.sv_region_url), ttl=settings.directory_cache_ttl
        )
        others = {r: u for r, u in settings.peers.items() if r != region}
        peers = MoneyPeers(
            {r: client("sv-money", u) for r, u in others.items()},
            {r: client("sv-money", u, settings.audit_timeout) for r, u in others.items()},
        )
        tx = Transactions(database)
        publisher = None
        if settings.notice_urls:
            publisher = await stack.enter_async_context(
                EventPublisher(HttpEventSink(settings.notice_urls, signer))
            )
        notices = TransferNotices(publisher)
        # The request that starts a cross-region transfer delivers it itself (one call,
        # retried once); the recovery worker steps in once that request has had time to.
        grace = 2 * settings.peer_timeout + 1.0
        crossregion = CrossRegionService(
            tx, peers, region=region, abort_after=settings.outbox_abort_after, notices=notices
        )
        transfers = TransferService(
            tx,
            directory,
            crossregion,
            region=region,
            fee_bps=settings.transfer_fee_bps,
            max_amount=settings.max_amount,
            delivery_grace=grace,
            notices=notices,
        )
        await stack.enter_async_context(crossregion.running())
        await stack.enter_async_context(transfers.running())
        yield Services(
            transactions=tx,
            wallet=WalletService(tx, region=region),
            transfers=transfers,
            holds=HoldService(
                tx,
                directory,
                crossregion,
                region=region,
                max_amount=settings.max_amount,
                default_ttl=settings.hold_default_ttl,
                max_ttl=settings.hold_max_ttl,
                delivery_grace=grace,
            ),
            topups=TopupService(
                tx, directory, peers, region=region, max_amount=settings.max_amount
            ),
            crossregion=crossregion,
            audit=AuditService(
                tx,
                peers,
                crossregion,
                region=region,
                inflight_grace=settings.audit_inflight_grace,
            ),
        )


def create_app(
    config: ServiceSettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The sv-money app; ``transport`` carries its calls to other services (tests)."""
    settings = own_settings(config, Settings)
    if not settings.region:
        raise ValueError("sv-money serves one region: set SV_MONEY_REGION")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            AsyncExitStack() as stack,
            open_services(
                settings, app.state.database, app.state.signer, transport=transport
            ) as services,
            every(
                "outbox-recovery",
                OutboxRecovery(services.crossregion).tick,
                settings.outbox_interval,
            ),
            every("hold-expiry", HoldExpiry(services.holds).tick, settings.hold_sweep_interval),
            every(
                "idempotency-keys",
                partial(forget_expired, services.transactions, ttl=settings.idempotency_ttl),
                60.0,
            ),
            (
                every(
                    "audit",
                    services.audit.run,
                    settings.audit_interval,
                    first_after=settings.audit_interval,
                )
                if settings.audit_interval > 0
                else nullcontext()
            ),
        ):
            app.state.services = services
            if settings.grpc_port:
                servicer = WalletServicer(
                    signer=app.state.signer,
                    replay=app.state.replay,
                    permissions=getattr(app.state, "permissions", None),
                    wallet=services.wallet,
                    transfers=services.transfers,
                    audit=services.audit,
                )
                await stack.enter_async_context(
                    grpc_listener(
                        settings,
                        settings.grpc_port,
                        lambda server: add_WalletServicer_to_server(servicer, server),  # type: ignore[no-untyped-call]
                        version=app.version,
                    )
                )
            provide(
                app,
                services.wallet,
                services.transfers,
                services.holds,
                services.topups,
                services.crossregion,
                services.audit,
            )
            yield

    app = create_service_app(
        settings,
        title="sv-money",
        description="Wallets on a double-entry ledger.",
        migrations=MIGRATIONS,
        lifespan=lifespan,
        api_prefix="/api/v1/wallet",
    )
    for router in (
        wallet_router,
        transfers_router,
        holds_router,
        topups_router,
        audit_router,
        topups_internal_router,
        crossregion_router,
        audit_internal_router,
    ):
        app.include_router(router)
    return app
