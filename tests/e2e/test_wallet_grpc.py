"""sv-money's gRPC API through the gateway on the real stack: grpcio clients, tokens from
auth-jwt, the gateway's gRPC routes (routes.toml), auth-rbac's policy and quotas, and
sv-money's own gRPC listener (SV_MONEY_GRPC_PORT, from the topology's grpc_port)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest

from sv_money.rpc.gen import wallet_pb2, wallet_pb2_grpc
from tests.e2e.accounts import admin, register
from tests.e2e.conftest import Stack
from tests.worker import PORT_SHIFT

pytestmark = pytest.mark.e2e

#: sv-money east's gRPC listener (deploy/services.toml: grpc_port = 7215).
SV_MONEY_EAST_GRPC = f"127.0.0.1:{7215 + PORT_SHIFT}"


def _target(stack: Stack) -> str:
    return stack.public.removeprefix("http://")


def _metadata(headers: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return (("authorization", headers["authorization"]),)


def _top_up(stack: Stack, root: dict[str, str], username: str, amount: int) -> None:
    made = httpx.post(
        stack.public + "/api/v1/wallet/topups",
        json={"username": username, "amount": amount, "currency": "USD"},
        headers=root | {"idempotency-key": f"grpc-{uuid.uuid4().hex}"},
        timeout=15,
    )
    assert made.status_code == 201, made.text


async def _calls(stack: Stack, alice: dict[str, str], bob_name: str) -> None:
    meta = _metadata(alice)
    async with grpc.aio.insecure_channel(_target(stack)) as channel:
        wallet = wallet_pb2_grpc.WalletStub(channel)  # type: ignore[no-untyped-call]
        # Unary (idempotent at the gateway).
        reply = await wallet.Balance(wallet_pb2.BalanceRequest(), metadata=meta, timeout=10)
        usd = next(a for a in reply.accounts if a.currency == "USD")
        assert (usd.balance, usd.available) == (10_000, 10_000)

        # Bidirectional: one answer per request, in order; a key used again is a replay,
        # a refusal is an answer and the stream goes on.
        async def requests() -> AsyncIterator[wallet_pb2.TransferRequest]:
            for key, amount in (("g1", 1_000), ("g2", 500), ("g1", 1_000), ("g3", 10**9)):
                yield wallet_pb2.TransferRequest(
                    idempotency_key=key, to_username=bob_name, amount=amount, currency="USD"
                )

        results = [r async for r in wallet.Transfers(requests(), metadata=meta, timeout=15)]
        assert [(r.idempotency_key, r.replayed) for r in results] == [
            ("g1", False),
            ("g2", False),
            ("g1", True),
            ("g3", False),
        ]
        assert results[0].transfer.id == results[2].transfer.id
        assert results[0].transfer.status == "completed"
        assert results[3].error == "insufficient-funds"
        assert not results[3].transfer.id
        after = await wallet.Balance(wallet_pb2.BalanceRequest(), metadata=meta, timeout=10)
        assert next(a for a in after.accounts if a.currency == "USD").balance == 8_500

        # Server streaming: the movements, newest first.
        history = [
            m
            async for m in wallet.History(
                wallet_pb2.HistoryRequest(limit=10), metadata=meta, timeout=10
            )
        ]
        assert [m.amount for m in history] == [500, 1_000, 10_000]
        assert history[0].to_username == bob_name


def test_unary_server_streaming_and_bidirectional_calls_with_a_token(stack: Stack) -> None:
    root = admin(stack)
    alice_name, alice = register(stack, "east", "ga")
    bob_name, _ = register(stack, "west", "gb")
    _top_up(stack, root, alice_name, 10_000)
    asyncio.run(_calls(stack, alice, bob_name))


async def _refusals(stack: Stack, plain: dict[str, str]) -> None:
    async with grpc.aio.insecure_channel(_target(stack)) as channel:
        wallet = wallet_pb2_grpc.WalletStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await wallet.Balance(wallet_pb2.BalanceRequest(), timeout=10)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as forged:
            await wallet.Balance(
                wallet_pb2.BalanceRequest(), metadata=(("authorization", "Bearer x.y.z"),)
            )
        assert forged.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as denied:  # wallet:audit is an admin's
            await wallet.Audit(wallet_pb2.AuditRequest(), metadata=_metadata(plain), timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await channel.unary_unary("/edge.money.v1.Nothing/Here")(b"", timeout=10)
        assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # Around the gateway: sv-money's own listener wants the gateway's signature.
    async with grpc.aio.insecure_channel(SV_MONEY_EAST_GRPC) as direct:
        wallet = wallet_pb2_grpc.WalletStub(direct)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as unsigned:
            await wallet.Balance(
                wallet_pb2.BalanceRequest(),
                metadata=(("x-edge-identity", "forged"), *_metadata(plain)),
                timeout=10,
            )
        assert unsigned.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_refusals_are_grpc_statuses_at_the_gateway_and_at_the_service(stack: Stack) -> None:
    _, plain = register(stack, "east", "gp")
    asyncio.run(_refusals(stack, plain))


async def _audits(stack: Stack, root: dict[str, str]) -> list[grpc.StatusCode]:
    """Six audits at once (one HTTP/2 connection, six streams)."""
    async with grpc.aio.insecure_channel(_target(stack)) as channel:
        wallet = wallet_pb2_grpc.WalletStub(channel)  # type: ignore[no-untyped-call]
        calls = [
            wallet.Audit(wallet_pb2.AuditRequest(), metadata=_metadata(root), timeout=15)
            for _ in range(6)
        ]
        await asyncio.gather(*calls, return_exceptions=True)
        return sorted([await call.code() for call in calls], key=lambda c: c.value[0])


def test_a_quota_refusal_is_resource_exhausted(stack: Stack) -> None:
    root = admin(stack)
    target = "POST /edge.money.v1.Wallet/Audit"
    quota = {"kind": "route", "target": target, "qps": 1}
    put = httpx.put(stack.public + "/api/v1/quotas", json=quota, headers=root, timeout=15)
    assert put.status_code == 201, put.text
    version = httpx.get(stack.public + "/api/v1/quotas", headers=root, timeout=15).json()
    deadline = time.monotonic() + 10
    while (
        httpx.get(stack.admin + "/cluster", timeout=5).json()["quotas"]["version"]
        < version["version"]
    ):
        assert time.monotonic() < deadline, "the quota did not reach the gateway"
        time.sleep(0.05)
    try:
        codes = asyncio.run(_audits(stack, root))
        # qps 1, burst 1 (GCRA: one interval of tolerance): one or two calls admitted,
        # the others refused.
        admitted = codes.count(grpc.StatusCode.OK)
        assert 1 <= admitted <= 2, codes
        assert codes[admitted:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * (6 - admitted), codes
    finally:
        gone = httpx.delete(
            stack.public + "/api/v1/quotas",
            params={"kind": "route", "target": target},
            headers=root,
            timeout=15,
        )
        assert gone.status_code in (200, 204, 404), gone.text
