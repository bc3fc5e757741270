"""The identity services in one process: sv-region, sv-user east and west, auth-jwt.

Each app runs its real lifespan (migrations, backend, peer clients); their calls to
one another go through :class:`AppRouter`, an httpx transport that hands a request to
the app named by its host. Two flavours: SQLite files with the in-process backend,
or PostgreSQL schemas with Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from auth_jwt.config import Settings as AuthSettings
from auth_jwt.main import create_app as create_auth_app
from auth_rbac.config import Settings as RbacSettings
from auth_rbac.main import create_app as create_rbac_app
from edgelib.client import ServiceClient
from edgelib.identity import GATEWAY_SERVICE, Identity
from edgelib.permissions import PolicyPermissions
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from sv_region.config import Settings as RegionSettings
from sv_region.main import create_app as create_region_app
from sv_user.config import Settings as UserSettings
from sv_user.main import create_app as create_user_app

ADMIN_PASSWORD = "admin-test-password-1"
#: The address every in-process app sees its callers come from, and the range trusted.
PROXY_ADDRESS = "10.0.0.2"
PROXY_NETWORK = "10.0.0.0/8"
GATEWAY = ServiceSigner(GATEWAY_SERVICE, DEV_SERVICE_SECRET)

#: Which service serves a path, by prefix (the first match wins).
_DESTINATIONS = (
    ("/internal/users/", "auth-jwt"),  # .../sessions/revoke; POST /internal/users is sv-user's
    ("/internal/users", "sv-user"),
    ("/internal/credentials", "sv-user"),
    ("/internal/revocations", "auth-jwt"),
    ("/internal/directory", "sv-region"),
    ("/internal/policy", "auth-rbac"),
    ("/internal/assignments", "auth-rbac"),
    ("/internal/tenants", "auth-rbac"),
    ("/internal/quotas", "auth-rbac"),
    ("/api/v1/tenants", "auth-rbac"),
    ("/api/v1/quotas", "auth-rbac"),
    ("/api/v1/auth", "auth-jwt"),
    ("/api/v1/users", "sv-user"),
    ("/api/v1/regions", "sv-region"),
    ("/api/v1/rbac", "auth-rbac"),
)
#: The service that makes each internal call in the platform (the endpoint's caller list).
_CALLERS = (
    ("GET /internal/revocations", "gateway-api"),
    ("GET /internal/policy", "gateway-api"),
    ("GET /internal/directory/users/", "gateway-api"),
    ("GET /internal/directory/usernames/", "auth-jwt"),
    ("POST /internal/credentials/verify", "auth-jwt"),
    ("POST /internal/users/", "sv-user"),
    ("POST /internal/users", "sv-user"),
    ("POST /internal/assignments", "sv-user"),
    ("GET /internal/tenants/", "auth-jwt"),
    ("", "sv-user"),  # the directory's registration calls
)


def destination_of(target: str) -> str:
    """The service that serves ``target``."""
    path = target.split("?", 1)[0]
    for prefix, service in _DESTINATIONS:
        if path.startswith(prefix):
            return service
    raise LookupError(f"no service serves {path}")


def caller_of(method: str, target: str) -> str:
    """The platform service that makes ``method target`` (an allowed caller)."""
    call = f"{method} {target.split('?', 1)[0]}"
    return next(service for prefix, service in _CALLERS if call.startswith(prefix))


class AppRouter(httpx.AsyncBaseTransport):
    """Hands each request to the in-process app mounted under its host name."""

    def __init__(self) -> None:
        self.apps: dict[str, httpx.ASGITransport] = {}
        self.down: set[str] = set()

    def mount(self, host: str, app: FastAPI) -> None:
        self.apps[host] = httpx.ASGITransport(app=app, client=(PROXY_ADDRESS, 50000))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.apps.get(request.url.host)
        if transport is None or request.url.host in self.down:
            raise httpx.ConnectError(f"{request.url.host} is down", request=request)
        return await transport.handle_async_request(request)


@dataclass
class IdentityStack:
    router: AppRouter
    apps: dict[str, FastAPI]
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    @property
    def auth(self) -> httpx.AsyncClient:
        return self.clients["auth-jwt"]

    @property
    def region(self) -> httpx.AsyncClient:
        return self.clients["sv-region"]

    def users(self, region: str) -> httpx.AsyncClient:
        return self.clients[f"sv-user-{region}"]

    async def register(
        self, username: str, password: str = "correct horse 1", *, region: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"username": username, "password": password}
        if region:
            body["region"] = region
        resp = await self.users("east").post("/api/v1/users", json=body)
        assert resp.status_code == 201, resp.text
        result: dict[str, Any] = resp.json()
        return result

    async def admin_identity(self, client_type: str = "app") -> Identity:
        """The bootstrap admin's identity, as the gateway would forward it (logs in)."""
        resp = await self.login("admin", ADMIN_PASSWORD, client_type)
        assert resp.status_code == 200, resp.text
        return identity_of(resp.json()["access_token"])

    async def login(
        self,
        username: str,
        password: str = "correct horse 1",
        client_type: str = "web",
        *,
        address: str = "203.0.113.7",
    ) -> httpx.Response:
        return await self.auth.post(
            "/api/v1/auth/login",
            json={"username": username, "password": password, "client_type": client_type},
            headers={"x-forwarded-for": address},
        )


def identity_of(access_token: str) -> Identity:
    """The identity a gateway would forward for this token (claims read unverified)."""
    claims = jwt.decode(access_token, options={"verify_signature": False})
    return Identity(
        user_id=claims["sub"],
        username=claims["preferred_username"],
        region=claims["region"],
        session_id=claims["sid"],
        client_type=claims["client_type"],
        tenant=claims.get("tenant", "default"),
        app=claims.get("client_id", ""),
    )


def as_gateway(method: str, target: str, identity: Identity) -> dict[str, str]:
    """Headers of a request the gateway forwards for ``identity``."""
    return GATEWAY.sign(
        method, target, None, destination=destination_of(target), identity=identity.encode()
    )


def signed(
    method: str, target: str, body: bytes = b"", *, caller: str | None = None
) -> dict[str, str]:
    """Headers of a service-to-service call, made by the service that makes it."""
    signer = ServiceSigner(caller or caller_of(method, target), DEV_SERVICE_SECRET)
    return signer.sign(method, target, body, destination=destination_of(target))


async def _drop_schemas(pg_url: str, schemas: list[str]) -> None:
    engine = create_async_engine(pg_url)
    async with engine.begin() as conn:
        for schema in schemas:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await engine.dispose()


async def _until_ready(client: httpx.AsyncClient, timeout: float = 10.0) -> None:
    """Wait like edgectl does: auth-jwt is ready once the bootstrap admin exists."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (await client.get("/readyz")).status_code != 200:
        assert asyncio.get_running_loop().time() < deadline, "auth-jwt never became ready"
        await asyncio.sleep(0.02)


@asynccontextmanager
async def identity_stack(
    var_dir: Path,
    *,
    pg_url: str | None = None,
    redis_url: str | None = None,
    auth: dict[str, Any] | None = None,
    users: dict[str, Any] | None = None,
) -> AsyncIterator[IdentityStack]:
    """The four apps started, with clients; PostgreSQL and Redis when URLs are given."""
    router = AppRouter()
    tag = uuid.uuid4().hex[:8]
    schemas: list[str] = []

    def storage(name: str) -> dict[str, Any]:
        common: dict[str, Any] = {"var_dir": var_dir, "redis_url": redis_url or "memory://"}
        if pg_url is None:
            db = var_dir / f"{name}.db"
            return {**common, "database_url": f"sqlite+aiosqlite:///{db}"}
        schema = f"t_{tag}_{name.replace('-', '_')}"
        schemas.append(schema)
        return {**common, "database_url": pg_url, "database_schema": schema}

    peers = {"east": "http://sv-user-east", "west": "http://sv-user-west"}
    # The in-process apps see every caller as the transport's 10.0.0.2 (the "gateway"):
    # its X-Forwarded-For is believed. Request rate limits are off unless a test sets
    # them, since one module registers and logs in many times from one address.
    user_extra: dict[str, Any] = {
        "trusted_proxies": PROXY_NETWORK,
        "register_address_limit": 0,
        "register_username_limit": 0,
        # Nor are registrations held back to hide a taken name (test_registration_abuse).
        "registration_min_seconds": 0,
        **(users or {}),
    }
    auth_extra: dict[str, Any] = {
        "trusted_proxies": PROXY_NETWORK,
        "login_address_limit": 0,
        "refresh_address_limit": 0,
        **(auth or {}),
    }
    apps: dict[str, FastAPI] = {
        "sv-region": create_region_app(RegionSettings(**storage("sv-region"))),
        "auth-rbac": create_rbac_app(RbacSettings(**storage("auth-rbac"))),
        "sv-user-east": create_user_app(
            UserSettings(
                region="east",
                sv_region_url="http://sv-region",
                auth_jwt_url="http://auth-jwt",
                auth_rbac_url="http://auth-rbac",
                region_peers=peers,
                **storage("sv-user-east"),
                **user_extra,
            ),
            transport=router,
        ),
        "sv-user-west": create_user_app(
            UserSettings(
                region="west",
                sv_region_url="http://sv-region",
                auth_jwt_url="http://auth-jwt",
                auth_rbac_url="http://auth-rbac",
                region_peers=peers,
                **storage("sv-user-west"),
                **user_extra,
            ),
            transport=router,
        ),
        "auth-jwt": create_auth_app(
            AuthSettings(
                sv_region_url="http://sv-region",
                sv_user_urls=peers,
                auth_rbac_url="http://auth-rbac",
                **{"admin_password": ADMIN_PASSWORD, **storage("auth-jwt"), **auth_extra},
            ),
            transport=router,
        ),
    }
    for host, app in apps.items():
        if host != "auth-rbac":
            # Their own admin endpoints ask this stack's auth-rbac (edgelib.permissions).
            service = "sv-user" if host.startswith("sv-user") else host
            app.state.permissions = PolicyPermissions(
                ServiceClient(
                    "http://auth-rbac",
                    signer=ServiceSigner(service, DEV_SERVICE_SECRET).to("auth-rbac"),
                    transport=router,
                )
            )
    stack = IdentityStack(router, apps)
    try:
        async with AsyncExitStack() as exits:
            for host, app in apps.items():
                await exits.enter_async_context(app.router.lifespan_context(app))
                router.mount(host, app)
                stack.clients[host] = await exits.enter_async_context(
                    httpx.AsyncClient(transport=router, base_url=f"http://{host}")
                )
            await _until_ready(stack.auth)
            yield stack
    finally:
        if pg_url is not None:
            await _drop_schemas(pg_url, schemas)
