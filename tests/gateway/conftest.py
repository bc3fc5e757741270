"""A gateway in-process (its real public and admin listeners) over tiny real upstreams."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from gateway_api.admin.app import create_app
from gateway_api.config import Settings
from gateway_api.gateway import Gateway
from gateway_api.proxy import bad_request, create_public_app
from gateway_api.transport.h2 import enable_http2
from gateway_api.transport.server import HttpServer
from tests.gateway.upstream import UpstreamState, upstream_app
from tests.worker import free_port

ROUTES = """
[defaults]
retries = 1
connect_timeout = 0.5
read_timeout = 1.0
total_timeout = 1.5
max_body = 65536

[[routes]]
prefix = "/api/v1/echo"
service = "echo"
access = "public"
balancing = "{balancing}"

# Slow answers outlive a route-table reload (test_forwarding): a second or more, on a
# loaded machine, must not meet the 1 s read timeout above.
[[routes]]
prefix = "/api/v1/echo/slow"
service = "echo"
access = "public"
read_timeout = 10.0
total_timeout = 12.0

[[routes]]
path = "/api/v1/echo/ws"
service = "echo"
access = "public"
websocket = true

[[routes]]
path = "/api/v1/private/ws"
service = "echo"
access = "authenticated"
websocket = true

[[routes]]
prefix = "/api/v1/private"
service = "echo"
access = "authenticated"
"""


async def serve(app: object, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(
        uvicorn.Config(  # type: ignore[arg-type]
            app, host="127.0.0.1", port=port, log_config=None, lifespan="off", proxy_headers=False
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task


@dataclass
class GatewayUnderTest:
    url: str
    admin: str
    gateway: Gateway
    upstreams: dict[str, UpstreamState]
    routes_path: Path
    ports: dict[str, int]
    server: HttpServer | None = None

    async def cluster(self) -> dict:  # type: ignore[type-arg]
        async with httpx.AsyncClient() as c:
            return (await c.get(self.admin + "/cluster")).json()  # type: ignore[no-any-return]

    async def instance(self, name: str) -> dict:  # type: ignore[type-arg]
        port = self.ports[name]
        for pool in (await self.cluster())["services"]:
            for inst in pool["instances"]:
                if inst["url"].endswith(f":{port}"):
                    return inst  # type: ignore[no-any-return]
        raise KeyError(name)


async def start_gateway(
    tmp_path: Path,
    weights: dict[str, int],
    balancing: str = "round_robin",
    **overrides: object,
) -> AsyncIterator[GatewayUnderTest]:
    """A gateway over one tiny upstream per ``weights`` entry; ``overrides`` are settings."""
    states = {name: UpstreamState(name) for name in weights}
    ports = {name: free_port() for name in weights}
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
    try:  # whatever fails to start, what did start is shut down (no leaked sockets)
        for n in weights:
            servers.append(await serve(upstream_app(states[n]), ports[n]))
        instances = ", ".join(f"{{ port = {ports[n]}, weight = {w} }}" for n, w in weights.items())
        topology = tmp_path / "topology.toml"
        topology.write_text(
            f'[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n'
            f'[[services]]\nname = "echo"\ninstances = [{instances}]\n'
        )
        routes = tmp_path / "routes.toml"
        routes.write_text(ROUTES.replace("{balancing}", balancing))
        public_port, admin_port = free_port(), free_port()
        settings = Settings(
            port=public_port,
            admin_port=admin_port,
            topology=topology,
            routes=routes,
            var_dir=tmp_path,
            health_interval=0.2,
            health_timeout=0.3,
            unhealthy_threshold=2,
            **overrides,  # type: ignore[arg-type]
        )
        gateway = Gateway(settings)
        admin_app = create_app(settings, gateway)
        async with admin_app.router.lifespan_context(admin_app):
            servers.append(await serve(admin_app, admin_port))
            public_server = HttpServer(
                create_public_app(gateway),
                bad_request=bad_request,
                keep_alive_timeout=settings.keep_alive_timeout,
                trusted_proxies=settings.trusted_peers(),
                limits=settings.client_limits(),
            )
            if settings.http2:
                enable_http2(public_server, settings.h2_limits())
            tls = settings.tls()
            context = None if tls is None else tls.context
            await public_server.start("127.0.0.1", public_port, ssl=context)
            if tls is not None:
                tls.start()
            scheme = "http" if tls is None else "https"
            try:
                yield GatewayUnderTest(
                    url=f"{scheme}://127.0.0.1:{public_port}",
                    admin=f"http://127.0.0.1:{admin_port}",
                    gateway=gateway,
                    upstreams=states,
                    routes_path=routes,
                    ports=ports,
                    server=public_server,
                )
            finally:
                for state in states.values():
                    state.hang = False
                await public_server.stop(grace=1.0)
                if tls is not None:
                    await tls.stop()
    finally:
        for server, task in servers:
            server.should_exit = True
            await task


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[GatewayUnderTest]:
    async for g in start_gateway(tmp_path, {"a": 1, "b": 1}):
        yield g


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


ROOT = Path(__file__).parents[2]


async def tiny_app(scope, receive, send):  # type: ignore[no-untyped-def]
    """The upstream of the worker-process tests: 200 for everything, /healthz included."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@dataclass
class WorkerGateway:
    public: int
    admin: int
    workers: list[dict[str, object]]


@contextlib.contextmanager
def worker_gateway(
    tmp_path: Path,
    routes: str,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
    upstream_app: tuple[str, ...] = ("tests.gateway.conftest:tiny_app",),
) -> Iterator[WorkerGateway]:
    """``python -m gateway_api`` with ``workers`` processes on one port, over tiny_app
    (or the uvicorn app arguments ``upstream_app``)."""
    upstream_port, public, admin = free_port(), free_port(), free_port()
    (tmp_path / "topology.toml").write_text(
        f'[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n'
        f'[[services]]\nname = "echo"\ninstances = [{{ port = {upstream_port} }}]\n'
        f'[[services]]\nname = "auth-jwt"\ninstances = [{{ port = {upstream_port} }}]\n'
        f'[[services]]\nname = "auth-rbac"\ninstances = [{{ port = {upstream_port} }}]\n'
    )
    (tmp_path / "routes.toml").write_text(routes)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "GATEWAY_"))}
    environ.update(
        GATEWAY_WORKERS=str(workers),
        GATEWAY_PORT=str(public),
        GATEWAY_ADMIN_PORT=str(admin),
        GATEWAY_TOPOLOGY=str(tmp_path / "topology.toml"),
        GATEWAY_ROUTES=str(tmp_path / "routes.toml"),
        EDGE_VAR_DIR=str(tmp_path / "var"),
        **(env or {}),
    )
    upstream = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *upstream_app, "--port",
         str(upstream_port), "--log-level", "warning"],
        cwd=ROOT,
    )  # fmt: skip
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway_api"],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import httpx as _httpx

        seen: list[dict[str, object]] = []
        deadline = time.monotonic() + 180  # a loaded 2-core machine starts slowly
        with _httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline and len(seen) < workers:
                try:
                    seen = client.get(f"http://127.0.0.1:{admin}/cluster").json()["workers"]
                except (_httpx.HTTPError, ValueError, KeyError):
                    seen = []
                if len(seen) < workers:
                    time.sleep(0.5)
        assert len(seen) == workers, seen
        yield WorkerGateway(public, admin, seen)
    finally:
        os.killpg(gateway.pid, signal.SIGTERM)
        gateway.wait(timeout=30)
        upstream.terminate()
        upstream.wait(timeout=10)
