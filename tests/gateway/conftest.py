"""A gateway in-process (its real public and admin listeners) over tiny real upstreams."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from gateway_api.config import Settings
from gateway_api.gateway import Gateway
from gateway_api.main import create_app, create_public_app
from gateway_api.proxy import bad_request
from gateway_api.server import HttpServer
from tests.gateway.upstream import UpstreamState, upstream_app

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

[[routes]]
prefix = "/api/v1/private"
service = "echo"
access = "authenticated"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    tmp_path: Path, weights: dict[str, int], balancing: str = "round_robin"
) -> AsyncIterator[GatewayUnderTest]:
    states = {name: UpstreamState(name) for name in weights}
    ports = {name: free_port() for name in weights}
    servers = [await serve(upstream_app(states[n]), ports[n]) for n in weights]
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
    )
    gateway = Gateway(settings)
    admin_app = create_app(settings, gateway)
    async with admin_app.router.lifespan_context(admin_app):
        admin_server, admin_task = await serve(admin_app, admin_port)
        public_server = HttpServer(create_public_app(gateway), bad_request=bad_request)
        await public_server.start("127.0.0.1", public_port)
        try:
            yield GatewayUnderTest(
                url=f"http://127.0.0.1:{public_port}",
                admin=f"http://127.0.0.1:{admin_port}",
                gateway=gateway,
                upstreams=states,
                routes_path=routes,
                ports=ports,
            )
        finally:
            for state in states.values():
                state.hang = False
            await public_server.stop(grace=1.0)
            for server, task in [(admin_server, admin_task), *servers]:
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
