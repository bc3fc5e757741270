"""FastAPI dependencies every service shares."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Annotated, Any

from fastapi import Depends, Request

from edgelib.backends import Backend, BackendError
from edgelib.identity import GATEWAY_SERVICE, Identity, IdentityError
from edgelib.problems import Forbidden, ServiceUnavailable, Unauthorized
from edgelib.replay import ReplayCache
from edgelib.signing import (
    HEADER_CONTENT_DIGEST,
    HEADER_IDENTITY,
    UNSIGNED_PAYLOAD,
    ServiceSigner,
    SignatureError,
    SignedCaller,
)


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def request_target(request: Request) -> str:
    """The path and query exactly as sent, which is what signatures cover."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    target = raw.decode("latin-1")
    return target + "?" + query.decode("latin-1") if query else target


async def first_use(request: Request, caller: SignedCaller) -> None:
    """Record the request's nonce: 401 for a replay, 503 when the cache is away.

    Once per request: two dependencies verifying the same request record it once.
    """
    seen: set[str] = request.scope.setdefault("edge.nonces", set())
    if caller.nonce in seen:
        return
    replay: ReplayCache = request.app.state.replay
    try:
        await replay.first_use(caller)
    except SignatureError as exc:
        raise Unauthorized(str(exc), headers={"WWW-Authenticate": "EdgeService"}) from exc
    except BackendError as exc:
        raise ServiceUnavailable(
            "the replay cache is not answering", headers={"Retry-After": "1"}
        ) from exc
    seen.add(caller.nonce)


class _AllowedCaller:
    """The dependency behind :func:`InternalCaller`: verify, check the caller, record."""

    def __init__(
        self, allowed: frozenset[str], extra: Callable[[Request], Collection[str]] | None
    ) -> None:
        self.allowed = allowed
        self.extra = extra

    async def __call__(self, request: Request) -> str:
        signer: ServiceSigner = request.app.state.signer
        body = await request.body()
        try:
            caller = signer.verify_request(
                request.method, request_target(request), request.headers, body
            )
        except SignatureError as exc:
            raise Unauthorized(
                f"internal endpoint: {exc}", headers={"WWW-Authenticate": "EdgeService"}
            ) from exc
        if caller.service not in self.allowed and (
            self.extra is None or caller.service not in self.extra(request)
        ):
            raise Forbidden(f"{caller.service} may not call this internal endpoint")
        await first_use(request, caller)
        return caller.service


def InternalCaller(
    *, allowed: Iterable[str], extra: Callable[[Request], Collection[str]] | None = None
) -> Any:
    """``Depends`` for an internal endpoint open only to the services in ``allowed``.

    ``extra``, when given, names more callers from the running app (a setting listing a
    deployment's own services, say): ``extra(request)`` is asked on each call.

    Use as ``caller: Annotated[str, InternalCaller(allowed={"sv-user", "auth-jwt"})]``:
    401 when the service signature is missing, wrong, stale or replayed, 403 when it is
    valid but its service is not in the list. The value is the calling service's name.
    """
    names = frozenset(allowed)
    if not names:
        raise ValueError("an internal endpoint lists at least one caller")
    return Depends(_AllowedCaller(names, extra))


async def _gateway_identity(request: Request) -> Identity | None:
    if HEADER_IDENTITY not in request.headers:
        return None
    signer: ServiceSigner = request.app.state.signer
    # The gateway streams bodies unsigned unless told to sign them (GATEWAY_SIGN_BODIES).
    signed_body = request.headers.get(HEADER_CONTENT_DIGEST, UNSIGNED_PAYLOAD)
    body = await request.body() if signed_body != UNSIGNED_PAYLOAD else None
    try:
        caller = signer.verify_request(
            request.method,
            request_target(request),
            request.headers,
            body,
            require_body_digest=False,
        )
    except SignatureError as exc:
        raise Unauthorized("identity was not signed by the gateway") from exc
    if caller.service != GATEWAY_SERVICE:
        raise Unauthorized("identity was not signed by the gateway")
    await first_use(request, caller)
    try:
        return Identity.decode(request.headers[HEADER_IDENTITY])
    except IdentityError as exc:
        raise Unauthorized(str(exc)) from exc


async def current_user(request: Request) -> Identity:
    """The caller the gateway authenticated; 401 when there is none."""
    identity = await _gateway_identity(request)
    if identity is None:
        raise Unauthorized("authentication required", headers={"WWW-Authenticate": "Bearer"})
    return identity


async def optional_user(request: Request) -> Identity | None:
    """The authenticated caller if any (a forged identity is still refused)."""
    return await _gateway_identity(request)


BackendDep = Annotated[Backend, Depends(_backend)]
CurrentUser = Annotated[Identity, Depends(current_user)]
OptionalUser = Annotated[Identity | None, Depends(optional_user)]
