"""sv-user app: ``create_app()`` and its lifespan."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from edgelib.app import create_service_app
from edgelib.client import ServiceClient
from edgelib.forwarded import ClientAddresses
from edgelib.peers import DirectoryClient
from edgelib.ratelimit import RequestLimiter, WindowLimit
from edgelib.roles import RoleAssignments
from edgelib.settings import ServiceSettings, own_settings
from edgelib.signing import ServiceSigner
from sv_user.config import Settings, url_list
from sv_user.passwords import PasswordHashing
from sv_user.peers import AuthSessions, RegionPeers
from sv_user.users.endpoints import internal_router, router
from sv_user.users.names import ReservedNames
from sv_user.users.service import RegistrationLimits
from sv_user.users.timing import ResponseFloor

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    config: ServiceSettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The sv-user app; ``transport`` carries its calls to other services (tests)."""
    settings = own_settings(config, Settings)
    if not settings.region:
        raise ValueError("sv-user serves one region: set SV_USER_REGION")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        signer: ServiceSigner = app.state.signer

        def client(service: str, urls: str) -> ServiceClient:
            return ServiceClient(
                url_list(urls),
                signer=signer.to(service),
                timeout=settings.peer_timeout,
                transport=transport,
            )

        async with AsyncExitStack() as stack:
            directory = client("sv-region", settings.sv_region_url)
            stack.push_async_callback(directory.aclose)
            auth = client("auth-jwt", settings.auth_jwt_url)
            stack.push_async_callback(auth.aclose)
            peers: dict[str, ServiceClient] = {}
            for region, urls in settings.region_peers.items():
                if region != settings.region:
                    peers[region] = client("sv-user", urls)
                    stack.push_async_callback(peers[region].aclose)
            app.state.directory = DirectoryClient(directory)
            app.state.auth_sessions = AuthSessions(auth)
            rbac = client("auth-rbac", settings.auth_rbac_url)
            stack.push_async_callback(rbac.aclose)
            app.state.roles = RoleAssignments(rbac)
            stack.push_async_callback(app.state.roles.drain)
            app.state.peers = RegionPeers(peers)
            app.state.passwords = PasswordHashing(
                memory_kib=settings.password_memory_kib,
                iterations=settings.password_iterations,
                parallelism=settings.password_parallelism,
                workers=settings.password_hash_workers,
                max_waiting=settings.password_hash_queue,
                niceness=settings.password_hash_niceness,
            )
            stack.callback(app.state.passwords.close)
            app.state.reserved_names = ReservedNames.from_setting(
                settings.reserved_usernames, settings.admin_username
            )
            app.state.limiter = RequestLimiter(app.state.backend, prefix="user:limit")
            app.state.registration_limits = RegistrationLimits(
                address=WindowLimit(
                    "register-address",
                    settings.register_address_limit,
                    settings.register_address_window,
                ),
                username=WindowLimit(
                    "register-username",
                    settings.register_username_limit,
                    settings.register_username_window,
                ),
            )
            app.state.registration_floor = ResponseFloor(settings.registration_min_seconds)
            app.state.client_addresses = ClientAddresses(
                settings.trusted_proxies, hops=settings.trusted_proxy_hops
            )
            yield

    app = create_service_app(
        settings,
        title="sv-user",
        description="Accounts, profiles and credentials of one region's users.",
        migrations=MIGRATIONS,
        lifespan=lifespan,
        api_prefix="/api/v1/users",
    )
    app.include_router(router)
    app.include_router(internal_router)
    return app
