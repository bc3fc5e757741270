"""A service's gRPC listener (edgelib.rpcserver) with discovery on etcd: registered as a
member of ``<service>-grpc`` while it serves, answering grpc.health.v1 SERVING, and gone
from the registry before it stops."""

from __future__ import annotations

from pathlib import Path

import grpc
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgelib.discovery import EtcdClient
from edgelib.rpcserver import grpc_listener
from edgelib.settings import ServiceSettings
from tests.libs.discovery.etcd_server import EtcdServer
from tests.worker import free_port

pytestmark = pytest.mark.integration


class _Settings(ServiceSettings):
    service_name = "sv-money"


async def test_the_grpc_listener_registers_as_the_grpc_pool_and_leaves_first(
    etcd: EtcdServer, tmp_path: Path
) -> None:
    settings = _Settings(
        discovery="etcd",
        etcd_url=etcd.url,
        region="east",
        instance_id="sv-money-east-1",
        var_dir=tmp_path,
    )
    port = free_port()
    async with EtcdClient(etcd.url) as registry:
        async with grpc_listener(settings, port, lambda server: None):
            _, found = await registry.get_prefix(settings.discovery_prefix)
            members = [orjson.loads(kv.value) for kv in found]
            assert [(m["service"], m["region"], m["instance"], m["url"]) for m in members] == [
                ("sv-money-grpc", "east", "sv-money-east-1-grpc", f"http://127.0.0.1:{port}")
            ]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
                answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
        assert (await registry.get_prefix(settings.discovery_prefix))[1] == []
