"""gRPC through the gateway (rpc/proxy.py): a grpcio client, the gateway's real public
listener in-process, and two grpcio server processes of ``edge.money.v1.Wallet``
(tests/gateway/grpc_upstream.py) as the route's pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway_api.config import Settings
from gateway_api.gateway import Gateway
from gateway_api.proxy import bad_request, create_public_app
from gateway_api.rpc.proxy import GrpcProxy
from gateway_api.transport.h2 import enable_http2
from gateway_api.transport.server import HttpServer
from sv_money.rpc.gen import wallet_pb2, wallet_pb2_grpc
from tests.worker import free_port

ROOT = Path(__file__).parents[2]
ROUTES = """
[[routes]]
prefix = "/api/v1/wallet"
service = "wallet"
access = "public"

[[grpc_routes]]
prefix = "/edge.money.v1.Wallet"
service = "wallet"
access = "public"
deadline = 30

[[grpc_routes]]
path = "/edge.money.v1.Wallet/Balance"
service = "wallet"
access = "public"
idempotent = true
retries = 2

[[grpc_routes]]
path = "/edge.money.v1.Wallet/Audit"
service = "wallet"
access = "authenticated"

[[grpc_routes]]
path = "/edge.money.v1.Wallet/History"
service = "wallet"
access = "public"
rate_limit = "8/m"
rate_limit_by = "ip"
"""


@dataclass
class GrpcStack:
    target: str
    gateway: Gateway
    upstreams: dict[str, subprocess.Popen[bytes]]
    ports: dict[str, int]


def _upstream(name: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.gateway.grpc_upstream", name, str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    return proc


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[GrpcStack]:
    ports = {"a": free_port(), "b": free_port()}
    upstreams = {name: _upstream(name, port) for name, port in ports.items()}
    try:
        topology = tmp_path / "topology.toml"
        topology.write_text(
            '[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n'
            f'[[services]]\nname = "wallet"\ninstances = [{{ port = {free_port()} }}]\n'
            f'[[services]]\nname = "wallet-grpc"\ninstances = '
            f"[{{ port = {ports['a']} }}, {{ port = {ports['b']} }}]\n"
        )
        routes = tmp_path / "routes.toml"
        routes.write_text(ROUTES)
        port = free_port()
        settings = Settings(
            port=port,
            admin_port=free_port(),
            topology=topology,
            routes=routes,
            var_dir=tmp_path,
            health_interval=0.2,
            health_timeout=0.5,
            unhealthy_threshold=1,
        )
        gateway = Gateway(settings)
        await gateway.start()
        grpc_proxy = GrpcProxy(gateway)
        server = HttpServer(
            create_public_app(gateway),
            bad_request=bad_request,
            keep_alive_timeout=settings.keep_alive_timeout,
            limits=settings.client_limits(),
        )
        enable_http2(server, settings.h2_limits(), grpc_proxy)
        await server.start("127.0.0.1", port)
        try:
            yield GrpcStack(f"127.0.0.1:{port}", gateway, upstreams, ports)
        finally:
            await server.stop(grace=1.0)
            grpc_proxy.close()
            await gateway.stop()
    finally:
        for proc in upstreams.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()


@pytest.fixture
async def wallet(stack: GrpcStack) -> AsyncIterator[wallet_pb2_grpc.WalletStub]:
    async with grpc.aio.insecure_channel(stack.target) as channel:
        yield wallet_pb2_grpc.WalletStub(channel)  # type: ignore[no-untyped-call]


async def test_unary_server_streaming_and_bidirectional_calls_pass_through(
    wallet: wallet_pb2_grpc.WalletStub,
) -> None:
    call = wallet.Balance(wallet_pb2.BalanceRequest(), timeout=5)
    reply = await call
    assert reply.accounts[0].currency == "EUR"
    assert await call.code() == grpc.StatusCode.OK
    assert dict(await call.initial_metadata())["x-upstream"] in {"a", "b"}

    history = [m async for m in wallet.History(wallet_pb2.HistoryRequest(limit=5), timeout=5)]
    assert [m.amount for m in history] == [0, 1, 2, 3, 4]

    async def requests() -> AsyncIterator[wallet_pb2.TransferRequest]:
        for key in ("k1", "k2", "k1"):
            yield wallet_pb2.TransferRequest(idempotency_key=key, to_username="bob", amount=7)

    results = [r async for r in wallet.Transfers(requests(), timeout=5)]
    assert [(r.idempotency_key, r.replayed) for r in results] == [
        ("k1", False),
        ("k2", False),
        ("k1", True),
    ]


async def test_the_gateways_refusals_are_grpc_statuses(
    wallet: wallet_pb2_grpc.WalletStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await wallet.Audit(wallet_pb2.AuditRequest(), timeout=5)
    assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # (A server-streaming method: grpcio's asyncio client may report INTERNAL instead of
    # the status when a call with a request stream still open is refused, grpc#36066.)
    for _ in range(8):
        [m async for m in wallet.History(wallet_pb2.HistoryRequest(limit=1), timeout=5)]
    with pytest.raises(grpc.aio.AioRpcError) as limited:  # the route's rate limit: 8/m
        [m async for m in wallet.History(wallet_pb2.HistoryRequest(limit=1), timeout=5)]
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_hung_instance_is_deadline_exceeded_within_the_deadline(
    wallet: wallet_pb2_grpc.WalletStub,
) -> None:
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as hung:
        await wallet.Balance(wallet_pb2.BalanceRequest(), timeout=1.0, metadata=(("x-hang", "1"),))
    assert hung.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.8


async def _read_to_the_end(stream: Any) -> None:
    while await stream.read() is not grpc.aio.EOF:
        pass


async def test_an_instance_killed_mid_stream_costs_no_idempotent_call(
    stack: GrpcStack, wallet: wallet_pb2_grpc.WalletStub
) -> None:
    stream = wallet.History(wallet_pb2.HistoryRequest(limit=100), timeout=20)
    first = await stream.read()
    victim = first.id.split("-")[0]
    survivor = "b" if victim == "a" else "a"
    stack.upstreams[victim].send_signal(signal.SIGKILL)
    with pytest.raises(grpc.aio.AioRpcError) as broken:
        await _read_to_the_end(stream)
    assert broken.value.code() == grpc.StatusCode.UNAVAILABLE
    for _ in range(30):  # unary idempotent calls: none fails (retried on the survivor)
        call = wallet.Balance(wallet_pb2.BalanceRequest(), timeout=5)
        await call
        assert dict(await call.initial_metadata())["x-upstream"] == survivor
    for _ in range(5):  # new streams go to the survivor
        history = [m async for m in wallet.History(wallet_pb2.HistoryRequest(limit=1), timeout=5)]
        assert history[0].id.startswith(survivor)
