"""auth-jwt app: ``create_app()`` and its lifespan."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from auth_jwt.apps.endpoints import router as apps_router
from auth_jwt.apps.token import router as token_router
from auth_jwt.bootstrap import AdminBootstrap
from auth_jwt.bootstrap_records import BootstrapRecords
from auth_jwt.config import Settings, url_list
from auth_jwt.keys.endpoints import router as keys_router
from auth_jwt.keys.ring import KeyRing
from auth_jwt.maintenance import Maintenance
from auth_jwt.peers import TenantDirectory, UserDirectory
from auth_jwt.sessions.admission import LoginLane
from auth_jwt.sessions.endpoints import internal_router as sessions_internal_router
from auth_jwt.sessions.endpoints import router as sessions_router
from auth_jwt.sessions.limits import AuthLimits
from auth_jwt.sessions.revocations import RevocationNotices
from auth_jwt.sessions.service import REVOCATION_MARGIN, TokenPolicy
from edgelib.app import create_service_app
from edgelib.client import ServiceClient
from edgelib.events import EventPublisher, HttpEventSink
from edgelib.forwarded import ClientAddresses
from edgelib.peers import DirectoryClient
from edgelib.ratelimit import RequestLimiter
from edgelib.roles import RoleAssignments
from edgelib.settings import ServiceSettings, own_settings
from edgelib.tasks import cancel

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    config: ServiceSettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The auth-jwt app; ``transport`` carries its calls to other services (tests)."""
    settings = own_settings(config, Settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:

            def client(service: str, urls: str) -> ServiceClient:
                made = ServiceClient(
                    url_list(urls),
                    signer=app.state.signer.to(service),
                    timeout=settings.peer_timeout,
                    transport=transport,
                )
                stack.push_async_callback(made.aclose)
                return made

            users = UserDirectory(
                # Not cached: a login follows a moved user at once.
                DirectoryClient(client("sv-region", settings.sv_region_url), ttl=0),
                {region: client("sv-user", urls) for region, urls in settings.sv_user_urls.items()},
            )
            keys = KeyRing(
                app.state.database,
                alg=settings.signing_alg,
                passphrase=settings.key_passphrase.get_secret_value().encode(),
                publish_after_retirement=settings.access_ttl + REVOCATION_MARGIN,
                reload_interval=settings.key_reload_interval,
            )
            await keys.start()
            app.state.keys = keys
            app.state.users = users
            app.state.token_policy = TokenPolicy(
                issuer=settings.issuer,
                audience=settings.audience,
                access_ttl=settings.access_ttl,
                refresh_ttl=settings.refresh_ttl,
                session_max_age=settings.session_max_age,
            )
            app.state.limits = AuthLimits.from_settings(settings)
            app.state.login_lane = LoginLane(settings.login_concurrency, settings.login_queue)
            app.state.limiter = RequestLimiter(app.state.backend, prefix="auth:limit")
            app.state.client_addresses = ClientAddresses(
                settings.trusted_proxies, hops=settings.trusted_proxy_hops
            )
            app.state.events = None
            if settings.notice_urls:
                sink = HttpEventSink(settings.notice_urls, app.state.signer, transport=transport)
                app.state.events = await stack.enter_async_context(EventPublisher(sink))
            app.state.revocation_notices = RevocationNotices(
                app.state.backend, settings.revocation_channel
            )
            rbac = client("auth-rbac", settings.auth_rbac_url)
            app.state.tenants = TenantDirectory(rbac)
            # Apps have no home region of their own: their tokens name the admin's.
            app.state.app_region = settings.admin_region
            bootstrap = AdminBootstrap(
                settings,
                users,
                RoleAssignments(rbac),
                BootstrapRecords(app.state.database),
            )
            app.state.bootstrap = bootstrap
            maintenance = Maintenance(
                keys,
                app.state.database,
                app.state.backend,
                rotation_interval=settings.key_rotation_interval,
                interval=settings.maintenance_interval,
            )
            tasks = [
                asyncio.create_task(bootstrap.run(), name="auth-jwt-bootstrap"),
                asyncio.create_task(maintenance.run(), name="auth-jwt-maintenance"),
            ]
            try:
                yield
            finally:
                await cancel(*tasks)

    async def admin_ready() -> None:
        await app.state.bootstrap.ready()

    app = create_service_app(
        settings,
        title="auth-jwt",
        description="Login, access and refresh tokens, sessions, JWKS and key rotation.",
        migrations=MIGRATIONS,
        lifespan=lifespan,
        readiness={"admin": admin_ready},
        api_prefix="/api/v1/auth",
    )
    app.include_router(sessions_router)
    app.include_router(sessions_internal_router)
    app.include_router(keys_router)
    app.include_router(apps_router)
    app.include_router(token_router)
    return app
