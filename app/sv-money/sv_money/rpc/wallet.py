"""The ``edge.money.v1.Wallet`` servicer: the REST API's services behind gRPC methods.

Every call first finds its caller as the REST endpoints do: the gateway-signed identity
in the metadata (:func:`edgelib.rpcidentity.gateway_identity`; a nonce is used once),
and ``Audit`` checks ``wallet:audit`` with auth-rbac again, as ``GET /audit`` does. A
refusal is the gRPC status of the REST API's problem (401 ``UNAUTHENTICATED``, 403
``PERMISSION_DENIED``, 404 ``NOT_FOUND``, 409 ``ALREADY_EXISTS``, 422
``INVALID_ARGUMENT``...), with its detail as the message; inside a ``Transfers`` stream a
refused transfer is an answer (``error``, ``detail``) and the stream goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pydantic

from edgelib.identity import Identity
from edgelib.permissions import PermissionCheck, PermissionsUnavailable
from edgelib.problems import Forbidden, Problem, ServiceUnavailable
from edgelib.replay import ReplayCache
from edgelib.rpcidentity import gateway_identity, metadata_map
from edgelib.signing import ServiceSigner
from sv_money.audit.service import AuditService
from sv_money.idempotency.exceptions import IdempotencyKeyRequired
from sv_money.posting.schemas import TransferRead
from sv_money.rpc.gen import wallet_pb2, wallet_pb2_grpc
from sv_money.transfers.schemas import TransferCreate
from sv_money.transfers.service import TransferService
from sv_money.wallet.service import WalletService

#: The REST API's problem statuses as gRPC codes.
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    421: grpc.StatusCode.FAILED_PRECONDITION,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
#: History pages read from the ledger per message batch, and the most one call streams.
_PAGE = 100
#: The service's methods are ``/edge.money.v1.Wallet/<name>`` (what the gateway signs).
_PATH = "/edge.money.v1.Wallet/"
_MAX_HISTORY = 1000


def status_of(problem: Problem) -> grpc.StatusCode:
    return _CODES.get(problem.status_code, grpc.StatusCode.INTERNAL)


def transfer_message(t: TransferRead) -> wallet_pb2.Transfer:
    return wallet_pb2.Transfer(
        id=t.id,
        kind=str(t.kind),
        status=str(t.status),
        amount=t.amount,
        fee=t.fee,
        currency=t.currency,
        memo=t.memo or "",
        from_username=t.from_username or "",
        from_region=t.from_region or "",
        to_username=t.to_username,
        to_region=t.to_region,
        created_at=t.created_at.isoformat(),
    )


class WalletServicer(wallet_pb2_grpc.WalletServicer):
    """Balance, history, transfers and the audit, for the gateway-signed caller."""

    def __init__(
        self,
        *,
        signer: ServiceSigner,
        replay: ReplayCache,
        permissions: PermissionCheck | None,
        wallet: WalletService,
        transfers: TransferService,
        audit: AuditService,
    ) -> None:
        self.signer = signer
        self.replay = replay
        self.permissions = permissions
        self.wallet = wallet
        self.transfers = transfers
        self.audit = audit

    async def _caller(self, context: grpc.aio.ServicerContext[Any, Any], method: str) -> Identity:
        """The signed caller of ``method``, or the call ends ``UNAUTHENTICATED``."""
        metadata = metadata_map(context.invocation_metadata())
        try:
            return await gateway_identity(self.signer, self.replay, _PATH + method, metadata)
        except Problem as problem:
            await context.abort(status_of(problem), problem.detail or problem.title)
            raise  # abort() raises; for the type checker

    async def Balance(
        self, request: wallet_pb2.BalanceRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> wallet_pb2.BalanceReply:
        """The caller's accounts."""
        caller = await self._caller(context, "Balance")
        try:
            accounts = await self.wallet.accounts(caller)
        except Problem as problem:
            await context.abort(status_of(problem), problem.detail or problem.title)
            raise
        return wallet_pb2.BalanceReply(
            accounts=[
                wallet_pb2.Account(
                    currency=a.currency, balance=a.balance, held=a.held, available=a.available
                )
                for a in accounts
            ]
        )

    async def History(
        self, request: wallet_pb2.HistoryRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[wallet_pb2.Transfer]:
        """The caller's movements, newest first, page by page from the ledger."""
        caller = await self._caller(context, "History")
        wanted = request.limit or _PAGE
        if not 1 <= wanted <= _MAX_HISTORY:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"limit is 1 to {_MAX_HISTORY}")
        cursor: str | None = None
        sent = 0
        while sent < wanted:
            try:
                page = await self.transfers.history(
                    caller, cursor=cursor, limit=min(_PAGE, wanted - sent)
                )
            except Problem as problem:
                await context.abort(status_of(problem), problem.detail or problem.title)
                raise
            for item in page.items:
                yield transfer_message(item)
                sent += 1
            cursor = page.next_cursor
            if cursor is None:
                return

    async def Transfers(
        self,
        request_iterator: AsyncIterator[wallet_pb2.TransferRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[wallet_pb2.TransferResult]:
        """One result per transfer request, in order; a refusal does not end the stream."""
        caller = await self._caller(context, "Transfers")
        async for request in request_iterator:
            yield await self._transfer(caller, request)

    async def _transfer(
        self, caller: Identity, request: wallet_pb2.TransferRequest
    ) -> wallet_pb2.TransferResult:
        key = request.idempotency_key
        result = wallet_pb2.TransferResult(idempotency_key=key)
        if not 1 <= len(key) <= 255 or not all(33 <= ord(c) <= 126 for c in key):
            problem: Problem = IdempotencyKeyRequired(
                "the idempotency key must be 1 to 255 visible ASCII characters"
            )
            result.error, result.detail = problem.type_slug, problem.detail or ""
            return result
        try:
            body = TransferCreate(
                to_username=request.to_username,
                amount=request.amount,
                currency=request.currency,
                memo=request.memo or None,
            )
            transfer, replayed = await self.transfers.create(caller, body, key)
        except pydantic.ValidationError as exc:
            result.error = "validation-error"
            result.detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            return result
        except Problem as problem:
            result.error, result.detail = problem.type_slug, problem.detail or problem.title
            return result
        result.transfer.CopyFrom(transfer_message(transfer))
        result.replayed = replayed
        return result

    async def Audit(
        self, request: wallet_pb2.AuditRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> wallet_pb2.AuditReply:
        """This region's ledger audit, for holders of wallet:audit (checked here too)."""
        caller = await self._caller(context, "Audit")
        try:
            await self._require(caller, "wallet", "audit")
            report = await self.audit.run()
        except Problem as problem:
            await context.abort(status_of(problem), problem.detail or problem.title)
            raise
        return wallet_pb2.AuditReply(
            region=report.region,
            ok=report.ok,
            violations=len(report.violations),
            in_flight=report.in_flight,
        )

    async def _require(self, caller: Identity, obj: str, act: str) -> None:
        """As :func:`edgelib.permissions.RequirePermission`: auth-rbac decides."""
        try:
            if self.permissions is None:
                raise PermissionsUnavailable("this service holds no key for auth-rbac")
            allowed = await self.permissions.allowed(caller.user_id, obj, act)
        except PermissionsUnavailable as exc:
            raise ServiceUnavailable("permissions cannot be checked now") from exc
        if not allowed:
            raise Forbidden(f"this needs the permission {obj}:{act}")
