"""A service's gRPC listener beside its HTTP one: grpcio's asyncio server on the same loop.

:func:`grpc_listener` serves the servicers a service adds, and the standard health
service (``grpc.health.v1.Health``, which the gateway probes for gRPC pools), on
``port``. With ``discovery = "etcd"`` it registers the listener as its own member,
``<service>-grpc`` (the gateway's gRPC pool of that service), and deregisters it before
the server stops; on the way out the health service answers ``NOT_SERVING`` first, so
the gateway stops choosing this instance while the calls in flight finish (``grace``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edgelib.discovery.registrar import Registrar
from edgelib.discovery.service import own_member
from edgelib.settings import ServiceSettings

logger = logging.getLogger("edgelib.rpc")

#: Messages larger than this are refused by the server (grpcio's default is 4 MiB).
MAX_MESSAGE = 1024 * 1024


def grpc_pool(service: str) -> str:
    """The discovery and topology name of ``service``'s gRPC listeners."""
    return f"{service}-grpc"


@asynccontextmanager
async def grpc_listener(
    settings: ServiceSettings,
    port: int,
    add_servicers: Callable[[grpc.aio.Server], None],
    *,
    version: str = "",
    grace: float = 5.0,
    max_concurrent_streams: int = 100,
) -> AsyncIterator[grpc.aio.Server]:
    """Serve gRPC on ``settings.host:port`` while inside."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_concurrent_streams", max_concurrent_streams),
            ("grpc.so_reuseport", 0),
        ]
    )
    add_servicers(server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    bound = server.add_insecure_port(f"{settings.host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {settings.host}:{port}")
    await server.start()
    await checks.set("", health_pb2.HealthCheckResponse.SERVING)
    logger.info("gRPC listening", extra={"port": bound})
    async with AsyncExitStack() as stack:
        if settings.discovery == "etcd":
            member = own_member(settings, version=version)
            member = dataclasses.replace(
                member,
                service=grpc_pool(settings.service_name),
                instance=f"{member.instance}-grpc",
                url=f"http://{member.url.removeprefix('http://').rpartition(':')[0]}:{bound}",
            )
            registrar = Registrar(
                settings.etcd_url,
                member,
                prefix=settings.discovery_prefix,
                ttl=settings.discovery_ttl,
            )
            await registrar.start()
            stack.push_async_callback(registrar.stop)
        try:
            yield server
        finally:
            await checks.enter_graceful_shutdown()
            await stack.aclose()
            await server.stop(grace)
