"""HTTP API of sessions: public login/refresh, the caller's sessions, an administrator's
view of any user's sessions, and internal feeds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from auth_jwt.sessions.lockout import LoginGuard
from auth_jwt.sessions.repository import SessionRepository
from auth_jwt.sessions.schemas import (
    LoginRequest,
    RefreshRequest,
    RevocationFeed,
    RevokedCount,
    RevokeUserSessions,
    SessionList,
    SessionRead,
    TokenPair,
)
from auth_jwt.sessions.service import Client, SessionService
from edgelib.deps import CurrentUser, InternalCaller
from edgelib.forwarded import ClientAddresses
from edgelib.identity import Identity
from edgelib.permissions import RequirePermission
from edgelib.uow import SessionDep

router = APIRouter(prefix="/api/v1/auth", tags=["sessions"])
internal_router = APIRouter(prefix="/internal", tags=["sessions (internal)"])
#: Gateways poll the revocations; sv-user ends a user's sessions after a password change.
GatewayCaller = Annotated[str, InternalCaller(allowed={"gateway-api"})]
UserServiceCaller = Annotated[str, InternalCaller(allowed={"sv-user"})]
#: Checked here as well as at the gateway: a wrong route table must not open these.
SessionReader = Annotated[Identity, RequirePermission("sessions:read")]
SessionRevoker = Annotated[Identity, RequirePermission("sessions:revoke")]
UserIdPath = Annotated[str, Path(min_length=1, max_length=64)]
SessionIdPath = Annotated[str, Path(min_length=1, max_length=64)]

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
TOO_MANY: dict[int | str, dict[str, str]] = {
    429: {"description": "Too many attempts (problem+json, Retry-After)"}
}
LOGIN_ERRORS: dict[int | str, dict[str, str]] = {
    **TOO_MANY,
    503: {"description": "The login lane is full, or sv-user cannot check now (Retry-After)"},
}


def _service(request: Request, session: SessionDep) -> SessionService:
    state = request.app.state
    return SessionService(
        SessionRepository(session),
        policy=state.token_policy,
        keys=state.keys,
        users=state.users,
        guard=LoginGuard(state.backend, state.limits.lockout),
        limiter=state.limiter,
        limits=state.limits,
        notices=state.revocation_notices,
        events=state.events,
        tenants=state.tenants,
        lane=state.login_lane,
    )


SessionServiceDep = Annotated[SessionService, Depends(_service)]


def client_of(request: Request) -> Client:
    """The client's address: what the gateway appended to X-Forwarded-For when the gateway
    is the peer (a trusted proxy), else the peer itself; see :mod:`edgelib.forwarded`."""
    addresses: ClientAddresses = request.app.state.client_addresses
    peer = request.client.host if request.client else None
    return Client(
        address=addresses.resolve(peer, request.headers.get("x-forwarded-for")),
        user_agent=request.headers.get("user-agent"),
    )


@router.post("/login", response_model=TokenPair, responses=LOGIN_ERRORS)
async def login(
    body: LoginRequest, request: Request, response: Response, service: SessionServiceDep
) -> TokenPair:
    """Exchange username and password for an access and a refresh token.

    A new login ends the user's previous session of the same ``client_type``. With
    ``tenant``, the tokens act in that tenant (the user must be a member; else 403).
    """
    response.headers.update(NO_STORE)
    return await service.login(body, client_of(request))


@router.post("/refresh", response_model=TokenPair, responses=TOO_MANY)
async def refresh(
    body: RefreshRequest, request: Request, response: Response, service: SessionServiceDep
) -> TokenPair:
    """Exchange a refresh token for new tokens; each refresh token works once.

    With ``tenant``, the new tokens act in that tenant (switching the session to it; the
    user must be a member, else 403 and the refresh token stays unused)."""
    response.headers.update(NO_STORE)
    return await service.refresh(body.refresh_token, client_of(request), body.tenant)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(caller: CurrentUser, service: SessionServiceDep) -> Response:
    """End this session."""
    await service.logout(caller)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT)
async def logout_all(caller: CurrentUser, service: SessionServiceDep) -> Response:
    """End every session of the caller, on every client."""
    await service.revoke_user(caller.user_id, keep=None, reason="logout-all")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sessions", response_model=SessionList)
async def list_sessions(caller: CurrentUser, service: SessionServiceDep) -> SessionList:
    """The caller's live sessions."""
    items = []
    for session in await service.live(caller.user_id):
        item = SessionRead.model_validate(session)
        item.current = session.id == caller.session_id
        items.append(item)
    return SessionList(items=items)


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def end_session(session_id: str, caller: CurrentUser, service: SessionServiceDep) -> Response:
    """End one of the caller's sessions."""
    await service.end(caller, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users/{user_id}/sessions", response_model=SessionList)
async def list_user_sessions(
    user_id: UserIdPath, admin: SessionReader, service: SessionServiceDep
) -> SessionList:
    """Any user's live sessions (``sessions:read``); ``current`` marks the caller's own."""
    items = []
    for session in await service.live(user_id):
        item = SessionRead.model_validate(session)
        item.current = session.id == admin.session_id
        items.append(item)
    return SessionList(items=items)


@router.delete("/users/{user_id}/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_user_session(
    user_id: UserIdPath,
    session_id: SessionIdPath,
    admin: SessionRevoker,
    service: SessionServiceDep,
) -> Response:
    """End one session of any user (``sessions:revoke``); gateways refuse its tokens
    within a second. 404 when the user has no such session."""
    await service.end_for(user_id, session_id, by=admin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@internal_router.get("/revocations", response_model=RevocationFeed)
async def revocations(
    caller: GatewayCaller,
    service: SessionServiceDep,
    since: Annotated[float, Query(ge=0)] = 0.0,
) -> RevocationFeed:
    """Sessions revoked since ``since`` whose access tokens may still be live (gateways poll)."""
    return await service.feed(since)


@internal_router.post("/users/{user_id}/sessions/revoke", response_model=RevokedCount)
async def revoke_user_sessions(
    user_id: str, body: RevokeUserSessions, caller: UserServiceCaller, service: SessionServiceDep
) -> RevokedCount:
    """End a user's sessions (sv-user, after a password change)."""
    count = await service.revoke_user(user_id, keep=body.except_session_id, reason=body.reason)
    return RevokedCount(revoked=count)
