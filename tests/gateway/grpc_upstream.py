"""A real grpcio server of ``edge.money.v1.Wallet`` for the gateway's gRPC tests.

``python -m tests.gateway.grpc_upstream NAME PORT``: balances in memory, every answer's
initial metadata says which instance served it (``x-upstream``), and a call with
``x-hang: 1`` never answers (a hung instance). grpc.health.v1 answers SERVING.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sv_money.rpc.gen import wallet_pb2, wallet_pb2_grpc


class Wallet(wallet_pb2_grpc.WalletServicer):
    def __init__(self, name: str) -> None:
        self.name = name
        self.balance = 1000
        self.seen: dict[str, wallet_pb2.TransferResult] = {}

    async def _start(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.send_initial_metadata((("x-upstream", self.name),))
        if dict(context.invocation_metadata() or ()).get("x-hang") == "1":
            await asyncio.sleep(3600)

    async def Balance(self, request: Any, context: Any) -> wallet_pb2.BalanceReply:
        await self._start(context)
        return wallet_pb2.BalanceReply(
            accounts=[
                wallet_pb2.Account(currency="EUR", balance=self.balance, available=self.balance)
            ]
        )

    async def History(self, request: Any, context: Any) -> AsyncIterator[wallet_pb2.Transfer]:
        await self._start(context)
        for i in range(request.limit or 10):
            yield wallet_pb2.Transfer(id=f"{self.name}-{i}", amount=i, currency="EUR")
            await asyncio.sleep(0.05)

    async def Transfers(
        self, request_iterator: Any, context: Any
    ) -> AsyncIterator[wallet_pb2.TransferResult]:
        await self._start(context)
        async for request in request_iterator:
            known = self.seen.get(request.idempotency_key)
            if known is not None:
                replay = wallet_pb2.TransferResult()
                replay.CopyFrom(known)
                replay.replayed = True
                yield replay
                continue
            self.balance -= request.amount
            result = wallet_pb2.TransferResult(
                idempotency_key=request.idempotency_key,
                transfer=wallet_pb2.Transfer(
                    id=f"t-{len(self.seen)}", amount=request.amount, to_username=request.to_username
                ),
            )
            self.seen[request.idempotency_key] = result
            yield result


async def main(name: str, port: int) -> None:
    server = grpc.aio.server()
    wallet_pb2_grpc.add_WalletServicer_to_server(Wallet(name), server)  # type: ignore[no-untyped-call]
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await checks.set("", health_pb2.HealthCheckResponse.SERVING)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
