"""The gateway's authorization step: auth-rbac's policy embedded, current, default deny.

auth-rbac runs in-process on a real port (the gateway fetches over aiohttp, as in
production); the gateway side is its :class:`Authorizer` and ``Gateway.authorize``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import orjson
import pytest

from auth_rbac.main import create_app as create_rbac_app
from edgelib.backends import RedisBackend
from edgelib.identity import Identity
from edgelib.problems import Problem, problem_body
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from gateway_api.config import AuthzSettings
from gateway_api.config import Settings as GatewaySettings
from gateway_api.gateway import Gateway
from gateway_api.problems import PermissionDenied, PolicyUnavailable
from gateway_api.routing.table import Permission, load_routes
from gateway_api.security.authz import Authorizer, AuthRbac
from gateway_api.topology import load_topology
from tests.auth_rbac.conftest import ADMIN, admin_client, fresh_pg_schema, rbac_settings
from tests.gateway.conftest import serve
from tests.worker import free_port

ROUTES = Path(__file__).parents[2] / "app/gateway-api/gateway_api/routes.toml"
SIGNER = ServiceSigner("gateway-api", DEV_SERVICE_SECRET)
PLAIN = Identity("u-plain", "plain", "east", "s-plain", "web")
ROOT = Identity(ADMIN, "admin", "east", "s-root", "web")


@dataclass
class Rbac:
    url: str
    api: httpx.AsyncClient  # signed as the admin, in-process


@asynccontextmanager
async def rbac_service(tmp_path: Path, **settings: str) -> AsyncIterator[Rbac]:
    """auth-rbac with its lifespan, also listening on a real port for the gateway."""
    port = free_port()
    app = create_rbac_app(rbac_settings(tmp_path, port=port, **settings))
    async with admin_client(app) as api:
        server, task = await serve(app, port)
        try:
            yield Rbac(f"http://127.0.0.1:{port}", api)
        finally:
            server.should_exit = True
            await task


@asynccontextmanager
async def authorizer(
    url: str, *, backend: RedisBackend | None = None, **settings: float
) -> AsyncIterator[Authorizer]:
    async with aiohttp.ClientSession() as session:
        authz = Authorizer(
            AuthRbac([url], SIGNER), backend=backend, settings=AuthzSettings(**settings)
        )
        await authz.start(session)
        try:
            yield authz
        finally:
            await authz.stop()


async def seconds_until_denied(authz: Authorizer, identity: Identity, limit: float = 3.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            authz.authorize(identity, Permission("wallet", "audit"))
        except PermissionDenied:
            return time.monotonic() - started
        await asyncio.sleep(0.01)
    raise AssertionError(f"still allowed after {limit}s")


async def grant_auditor(api: httpx.AsyncClient, user: str) -> None:
    await api.post("/api/v1/rbac/roles", json={"name": "auditor"})
    await api.post(
        "/api/v1/rbac/policies", json={"sub": "auditor", "obj": "wallet", "act": "audit"}
    )
    resp = await api.post("/api/v1/rbac/assignments", json={"user": user, "role": "auditor"})
    assert resp.status_code in (200, 201), resp.text


def permission_routes() -> list[Permission]:
    table = load_routes(ROUTES)
    found = {r.permission for r in table.routes if r.permission is not None}
    assert len(found) >= 5
    return sorted(found, key=lambda p: (p.obj, p.act))


async def test_plain_user_is_denied_every_admin_route_with_403_problem_and_admin_allowed(
    tmp_path: Path,
) -> None:
    """Through ``Gateway.authorize`` with the real route table (until the e2e version)."""
    topology = tmp_path / "topology.toml"
    async with rbac_service(tmp_path) as rbac:
        port = rbac.url.rsplit(":", 1)[1]
        # Every service the real table routes to is in the topology (the gateway refuses
        # routes to others); only auth-rbac is called here.
        services = {r.service for r in load_routes(ROUTES).routes} | {"auth-rbac"}
        topology.write_text(
            '[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n'
            + "".join(
                f'[[services]]\nname = "{name}"\ninstances = [{{ port = {port} }}]\n'
                for name in sorted(services)
            )
        )
        gateway = Gateway(GatewaySettings(topology=topology, routes=ROUTES, var_dir=tmp_path))
        gateway.security.authz = Authorizer.for_gateway(
            gateway.upstreams.topology, SIGNER, AuthzSettings(), backend=None
        )
        async with aiohttp.ClientSession() as session:
            await gateway.security.authz.start(session)
            try:
                for permission in permission_routes():
                    gateway.authorize(ROOT, permission)
                    with pytest.raises(Problem) as refused:
                        gateway.authorize(PLAIN, permission)
                    assert refused.value.status_code == 403
                    doc = orjson.loads(
                        problem_body(403, refused.value.type_slug, "x", refused.value.detail)
                    )
                    assert doc["type"].endswith("/permission-denied")
                    assert f"{permission.obj}:{permission.act}" in doc["detail"]
            finally:
                await gateway.security.authz.stop()


async def test_revocation_reaches_the_gateway_within_1s_by_polling(tmp_path: Path) -> None:
    async with rbac_service(tmp_path) as rbac, authorizer(rbac.url) as authz:
        await grant_auditor(rbac.api, PLAIN.user_id)
        started = time.monotonic()
        while not authz.allowed(PLAIN.user_id, "wallet", "audit"):
            assert time.monotonic() - started < 1.0
            await asyncio.sleep(0.01)
        resp = await rbac.api.request(
            "DELETE", "/api/v1/rbac/assignments", json={"user": PLAIN.user_id, "role": "auditor"}
        )
        assert resp.status_code == 204
        assert await seconds_until_denied(authz, PLAIN) < 1.0


@pytest.mark.integration
async def test_with_redis_the_notification_carries_the_change(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    """Polling slowed to 10 s: only the pub/sub message can make it within a second."""
    async with AsyncExitStack() as stack:
        schema = await stack.enter_async_context(fresh_pg_schema())
        rbac = await stack.enter_async_context(
            rbac_service(tmp_path, database_url=pg_url, schema=schema, redis_url=redis_url)
        )
        backend = RedisBackend(redis_url)
        stack.push_async_callback(backend.close)
        await grant_auditor(rbac.api, PLAIN.user_id)
        authz = await stack.enter_async_context(
            authorizer(rbac.url, backend=backend, policy_poll_interval=10.0)
        )
        await asyncio.sleep(0.2)  # the subscription is up
        assert authz.allowed(PLAIN.user_id, "wallet", "audit")
        resp = await rbac.api.request(
            "DELETE", "/api/v1/rbac/assignments", json={"user": PLAIN.user_id, "role": "auditor"}
        )
        assert resp.status_code == 204
        assert await seconds_until_denied(authz, PLAIN) < 1.0


async def test_decisions_are_cached_until_the_policy_version_changes(tmp_path: Path) -> None:
    async with rbac_service(tmp_path) as rbac, authorizer(rbac.url) as authz:
        version = authz.version
        assert authz.allowed(ADMIN, "users", "list")
        assert not authz.allowed(PLAIN.user_id, "users", "list")
        assert authz.allowed(ADMIN, "users", "list")
        assert authz.snapshot()["cached_decisions"] == 2
        await rbac.api.post(
            "/api/v1/rbac/policies", json={"sub": PLAIN.user_id, "obj": "users", "act": "list"}
        )
        started = time.monotonic()
        while authz.version == version:
            assert time.monotonic() - started < 1.0
            await asyncio.sleep(0.01)
        assert authz.snapshot()["cached_decisions"] == 0
        assert authz.allowed(PLAIN.user_id, "users", "list")


async def test_decision_cache_is_bounded(tmp_path: Path) -> None:
    async with (
        rbac_service(tmp_path) as rbac,
        authorizer(rbac.url, decision_cache_size=10) as authz,
    ):
        for i in range(25):
            assert not authz.allowed(f"u-{i}", "users", "list")
        assert 1 <= int(str(authz.snapshot()["cached_decisions"])) <= 10


async def test_without_a_policy_every_permission_route_answers_503(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with authorizer(closed, policy_start_wait=0.0) as authz:
        with pytest.raises(PolicyUnavailable) as unavailable:
            authz.authorize(ROOT, Permission("users", "list"))
        assert unavailable.value.status_code == 503
        assert unavailable.value.headers["Retry-After"] == "1"
        assert authz.snapshot()["source"] == "failing"


async def test_a_gateway_without_auth_rbac_in_its_topology_refuses_permission_routes(
    tmp_path: Path,
) -> None:
    topology = tmp_path / "topology.toml"
    topology.write_text('[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n')
    authz = Authorizer.for_gateway(load_topology(topology), SIGNER, AuthzSettings(), backend=None)
    await authz.start(None)
    with pytest.raises(PolicyUnavailable):
        authz.authorize(ROOT, Permission("users", "list"))
    await authz.stop()


async def test_permissions_are_checked_in_the_callers_tenant_and_cached_per_tenant(
    tmp_path: Path,
) -> None:
    """A role held in tenant acme allows there only: not in globex, not in default, and
    a cached allow in one tenant is never served to the same user in another."""
    topology = tmp_path / "topology.toml"
    async with rbac_service(tmp_path) as rbac:
        port = rbac.url.rsplit(":", 1)[1]
        services = {r.service for r in load_routes(ROUTES).routes} | {"auth-rbac"}
        topology.write_text(
            '[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n'
            + "".join(
                f'[[services]]\nname = "{name}"\ninstances = [{{ port = {port} }}]\n'
                for name in sorted(services)
            )
        )
        for tenant in ("acme", "globex"):
            resp = await rbac.api.post("/api/v1/tenants", json={"id": tenant, "name": tenant})
            assert resp.status_code == 201, resp.text
        resp = await rbac.api.post(
            "/api/v1/rbac/assignments", json={"user": "u-ann", "role": "admin", "dom": "acme"}
        )
        assert resp.status_code == 201, resp.text
        gateway = Gateway(GatewaySettings(topology=topology, routes=ROUTES, var_dir=tmp_path))
        gateway.security.authz = Authorizer.for_gateway(
            gateway.upstreams.topology, SIGNER, AuthzSettings(), backend=None
        )
        ann = {
            tenant: Identity("u-ann", "ann", "east", "s-ann", "web", tenant=tenant)
            for tenant in ("acme", "globex", "default")
        }
        rbac_admin = Permission("rbac", "admin")
        async with aiohttp.ClientSession() as session:
            await gateway.security.authz.start(session)
            try:
                for _ in range(2):  # the second round is served from the decision cache
                    gateway.authorize(ann["acme"], rbac_admin)
                    for tenant in ("globex", "default"):
                        with pytest.raises(PermissionDenied):
                            gateway.authorize(ann[tenant], rbac_admin)
                # The platform admin's role in default grants nothing inside acme.
                with pytest.raises(PermissionDenied):
                    gateway.authorize(
                        Identity(ADMIN, "admin", "east", "s-root", "web", tenant="acme"),
                        rbac_admin,
                    )
                # Disabling acme takes its rules out of the policy the gateway holds.
                version = gateway.security.authz.version
                await rbac.api.patch("/api/v1/tenants/acme", json={"disabled": True})
                started = time.monotonic()
                while gateway.security.authz.version == version:
                    assert time.monotonic() - started < 1.0
                    await asyncio.sleep(0.01)
                with pytest.raises(PermissionDenied):
                    gateway.authorize(ann["acme"], rbac_admin)
            finally:
                await gateway.security.authz.stop()
