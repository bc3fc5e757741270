"""HTTP API of the users domain: public routes (behind the gateway) and internal ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from edgelib.deps import CurrentUser, InternalCaller
from edgelib.forwarded import ClientAddresses
from edgelib.identity import Identity
from edgelib.permissions import RequirePermission
from edgelib.uow import SessionDep
from sv_user.users.repository import UserRepository
from sv_user.users.schemas import (
    AccountCreate,
    CredentialCheck,
    PasswordChange,
    ProfileUpdate,
    UserCreate,
    UserCreated,
    UserList,
    UserRead,
    VerifiedUser,
)
from sv_user.users.service import UserService
from sv_user.users.timing import ResponseFloor

router = APIRouter(prefix="/api/v1/users", tags=["users"])
internal_router = APIRouter(tags=["users (internal)"])
#: Another region's sv-user hands over the accounts it registered; auth-jwt checks logins.
PeerRegion = Annotated[str, InternalCaller(allowed={"sv-user"})]
Authenticator = Annotated[str, InternalCaller(allowed={"auth-jwt"})]
UserLister = Annotated[Identity, RequirePermission("users:list")]


def _service(request: Request, session: SessionDep) -> UserService:
    state = request.app.state
    return UserService(
        UserRepository(session),
        region=state.settings.region,
        passwords=state.passwords,
        directory=state.directory,
        peers=state.peers,
        sessions=state.auth_sessions,
        roles=state.roles,
        reserved=state.reserved_names,
        limiter=state.limiter,
        limits=state.registration_limits,
        default_role=state.settings.default_role,
        bootstrap_caller=state.settings.bootstrap_caller,
    )


UserServiceDep = Annotated[UserService, Depends(_service)]


async def _registration_floor(request: Request) -> AsyncIterator[None]:
    """Hold the answer until the registration floor, the session's commit included."""
    floor: ResponseFloor = request.app.state.registration_floor
    async with floor.hold():
        yield


#: Route dependencies are entered first and so left last: after the session commits,
#: before the response leaves (scope="function").
RegistrationFloor = Depends(_registration_floor, scope="function")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserCreated,
    dependencies=[RegistrationFloor],
    responses={429: {"description": "Too many registrations (problem+json, Retry-After)"}},
)
async def register(body: UserCreate, service: UserServiceDep, request: Request) -> UserCreated:
    """Create an account; the username is unique across all regions.

    Privileged names (``admin``, ``root`` ... and their variants) are refused with 409.
    Created or taken, the answer comes no sooner than ``SV_USER_REGISTRATION_MIN_SECONDS``.
    """
    return await service.register(body, address=client_address(request))


def client_address(request: Request) -> str | None:
    """The client's address: what the gateway appended to X-Forwarded-For when the gateway
    is the peer (a trusted proxy), else the peer itself; see :mod:`edgelib.forwarded`."""
    addresses: ClientAddresses = request.app.state.client_addresses
    peer = request.client.host if request.client else None
    return addresses.resolve(peer, request.headers.get("x-forwarded-for"))


@router.get("", response_model=UserList)
async def list_users(
    caller: UserLister,
    service: UserServiceDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    after: Annotated[str | None, Query(max_length=64)] = None,
) -> UserList:
    """This region's users by username, a page (users:list: the gateway and here check it)."""
    users, cursor = await service.list(after=after, limit=limit)
    return UserList(items=[UserRead.model_validate(u) for u in users], next=cursor)


@router.get("/me", response_model=UserRead)
async def read_me(caller: CurrentUser, service: UserServiceDep) -> UserRead:
    """The caller's own account."""
    return UserRead.model_validate(await service.get(caller.user_id))


@router.patch("/me", response_model=UserRead)
async def update_me(body: ProfileUpdate, caller: CurrentUser, service: UserServiceDep) -> UserRead:
    """Change the caller's profile (email, display name)."""
    return UserRead.model_validate(await service.update_profile(caller.user_id, body))


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    body: PasswordChange, caller: CurrentUser, service: UserServiceDep
) -> Response:
    """Change the caller's password; the user's other sessions end."""
    await service.change_password(caller, body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@internal_router.post(
    "/internal/users", status_code=status.HTTP_201_CREATED, response_model=UserCreated
)
async def create_account(
    body: AccountCreate, caller: PeerRegion, service: UserServiceDep
) -> UserCreated:
    """Store an account reserved by another region's registration (idempotent on user_id)."""
    return UserCreated.model_validate(await service.store_peer_account(body))


@internal_router.post(
    "/internal/bootstrap-accounts", status_code=status.HTTP_201_CREATED, response_model=UserCreated
)
async def create_bootstrap_account(
    body: AccountCreate, caller: Authenticator, service: UserServiceDep
) -> UserCreated:
    """For auth-jwt's bootstrap only: its admin account under the id it chose and remembers
    (reserved names allowed; idempotent on the id; 409 when another account holds the name)."""
    return await service.create_bootstrap_account(caller, body)


@internal_router.post("/internal/credentials/verify", response_model=VerifiedUser)
async def verify_credentials(
    body: CredentialCheck, caller: Authenticator, service: UserServiceDep
) -> VerifiedUser:
    """For auth-jwt: the account a username and password open, or 401."""
    return VerifiedUser.model_validate(
        await service.verify_credentials(body.username, body.password)
    )
