"""The rules of accounts: registration across regions, profiles, passwords, credentials."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from edgelib.identity import Identity
from edgelib.peers import DirectoryClient, PeerProblem, PeerUnavailable
from edgelib.ratelimit import RequestLimiter, WindowLimit
from edgelib.roles import RoleAssignments
from sv_user.models import User, utcnow
from sv_user.passwords import PasswordHashing
from sv_user.peers import AuthSessions, RegionPeers
from sv_user.users.exceptions import (
    InvalidCredentials,
    NotBootstrapCaller,
    UsernameReserved,
    UsernameTaken,
    UserNotFound,
    WeakPassword,
    WrongPassword,
    WrongRegion,
)
from sv_user.users.names import ReservedNames
from sv_user.users.repository import UserRepository
from sv_user.users.schemas import (
    AccountCreate,
    PasswordChange,
    ProfileUpdate,
    UserCreate,
    UserCreated,
)

logger = logging.getLogger("sv_user.users")


@dataclass(frozen=True, slots=True)
class RegistrationLimits:
    address: WindowLimit
    username: WindowLimit


def check_password_policy(username: str, password: str) -> None:
    if password.strip().lower() == username.lower():
        raise WeakPassword("the password must not be the username")
    if len(set(password)) < 4:
        raise WeakPassword("the password needs at least four different characters")


class UserService:
    def __init__(
        self,
        repository: UserRepository,
        *,
        region: str,
        passwords: PasswordHashing,
        directory: DirectoryClient,
        peers: RegionPeers,
        sessions: AuthSessions,
        roles: RoleAssignments,
        reserved: ReservedNames,
        limiter: RequestLimiter,
        limits: RegistrationLimits,
        default_role: str = "user",
        bootstrap_caller: str = "auth-jwt",
    ) -> None:
        self.repository = repository
        self.region = region
        self.passwords = passwords
        self.directory = directory
        self.peers = peers
        self.sessions = sessions
        self.roles = roles
        self.reserved = reserved
        self.limiter = limiter
        self.limits = limits
        self.default_role = default_role
        self.bootstrap_caller = bootstrap_caller

    async def register(self, data: UserCreate, *, address: str | None = None) -> UserCreated:
        """Reserve the name in the directory, then store the account in its region.

        The account of another region is stored by that region's sv-user. A definite
        refusal releases the name; an unknown outcome leaves the reservation pending
        (it is confirmed if the account was made, or expires otherwise).

        The password is hashed before the directory is asked, so a taken name costs
        the same hash as a free one; the route's response floor hides the rest (the
        insert and confirmation only a free name costs).
        """
        await self.limiter.hit(self.limits.address, address, "registrations from this address")
        await self.limiter.hit(self.limits.username, data.username, "attempts at this username")
        if data.username in self.reserved:
            raise UsernameReserved(f"the username {data.username!r} is reserved")
        check_password_policy(data.username, data.password)
        password_hash = await self.passwords.hash(data.password)
        reservation = await self.directory.reserve(
            data.username, data.region, phone=data.phone, address=address
        )
        account = AccountCreate.model_validate(
            {
                "user_id": reservation.user_id,
                "username": reservation.username,
                "password": data.password,
                "email": data.email,
                "region": reservation.region,
            }
        )
        return await self._store(account, reservation.region == self.region, password_hash)

    async def _store(self, account: AccountCreate, here: bool, password_hash: str) -> UserCreated:
        """Store a reserved account here or in its region; a definite refusal releases it."""
        try:
            if here:
                user = await self.create_account(account, password_hash=password_hash)
                return UserCreated.model_validate(user)
            stored = await self.peers.create_account(
                account.region, account.model_dump(mode="json")
            )
            return UserCreated.model_validate(stored)
        except PeerUnavailable:
            raise
        except Exception:
            await self._release(str(account.user_id))
            raise

    async def _release(self, user_id: str) -> None:
        """Give the name back; a failure is only logged (the reservation expires)."""
        try:
            await self.directory.release(user_id)
        except (PeerUnavailable, PeerProblem) as exc:
            logger.warning(
                "reservation not released", extra={"user_id": user_id, "error": exc.detail}
            )

    async def create_bootstrap_account(self, caller: str, data: AccountCreate) -> UserCreated:
        """The bootstrap's own account (a reserved name allowed), under the id it chose.

        Idempotent on that id; 409 when another account holds the name, so the caller
        never mistakes someone else's account for its own.
        """
        if caller != self.bootstrap_caller:
            raise NotBootstrapCaller(f"only {self.bootstrap_caller} creates bootstrap accounts")
        if data.region != self.region:
            raise WrongRegion(f"this is region {self.region!r}, not {data.region!r}")
        check_password_policy(data.username, data.password)
        reservation = await self.directory.reserve(
            data.username, data.region, user_id=str(data.user_id)
        )
        if reservation.user_id != str(data.user_id):
            raise UsernameTaken(f"the username {data.username!r} is taken")
        return await self._store(data, True, await self.passwords.hash(data.password))

    async def store_peer_account(self, data: AccountCreate) -> User:
        """An account another region's registration reserved; reserved names never come
        this way (only the bootstrap's own endpoint creates those)."""
        if data.username in self.reserved:
            raise UsernameReserved(f"the username {data.username!r} is reserved")
        return await self.create_account(data)

    async def create_account(
        self, data: AccountCreate, *, password_hash: str | None = None
    ) -> User:
        """Store an account reserved in the directory, then confirm the reservation.

        Confirming before the commit means a failed commit can leave a name taken
        without an account, never the reverse (a name that two regions could hand out).
        """
        if data.region != self.region:
            raise WrongRegion(f"this is region {self.region!r}, not {data.region!r}")
        user_id = str(data.user_id)
        existing = await self.repository.get(user_id)
        if existing is not None:
            if existing.username != data.username:
                raise UsernameTaken("this user id belongs to another account")
            return existing  # a retried request
        check_password_policy(data.username, data.password)
        now = utcnow()
        user = User(
            id=user_id,
            username=data.username,
            email=data.email,
            password_hash=password_hash or await self.passwords.hash(data.password),
            region=self.region,
            created_at=now,
            updated_at=now,
            password_changed_at=now,
        )
        try:
            await self.repository.add(user)
        except IntegrityError as exc:
            raise UsernameTaken(f"the username {data.username!r} is taken") from exc
        await self.directory.confirm(user_id)
        # Off the request path: auth-rbac being slow or down must not fail a registration.
        self.roles.assign_soon(user_id, self.default_role)
        logger.info("account created", extra={"user_id": user_id, "region": self.region})
        return user

    async def get(self, user_id: str) -> User:
        user = await self.repository.get(user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id} in region {self.region}")
        return user

    async def update_profile(self, user_id: str, changes: ProfileUpdate) -> User:
        user = await self.get(user_id)
        for name, value in changes.model_dump(exclude_unset=True).items():
            setattr(user, name, value)
        user.updated_at = utcnow()
        await self.repository.flush()
        return user

    async def change_password(self, caller: Identity, change: PasswordChange) -> None:
        """Replace the password and end the user's other sessions."""
        user = await self.get(caller.user_id)
        if not await self.passwords.verify(user.password_hash, change.current_password):
            raise WrongPassword("the current password is not right")
        check_password_policy(user.username, change.new_password)
        if change.new_password == change.current_password:
            raise WeakPassword("the new password is the current one")
        user.password_hash = await self.passwords.hash(change.new_password)
        user.password_changed_at = user.updated_at = utcnow()
        await self.repository.flush()
        await self.sessions.end_other_sessions(user.id, caller.session_id)

    async def list(self, *, after: str | None, limit: int) -> tuple[list[User], str | None]:
        users = await self.repository.page(after=after, limit=limit + 1)
        more = len(users) > limit
        users = users[:limit]
        return users, (users[-1].username if more and users else None)

    async def verify_credentials(self, username: str, password: str) -> User:
        """The account these credentials open; one refusal for every kind of mismatch."""
        user = await self.repository.by_username(username.strip().lower())
        ok = await self.passwords.verify(user.password_hash if user else None, password)
        if user is None or not ok:
            raise InvalidCredentials("invalid username or password")
        if self.passwords.needs_rehash(user.password_hash):
            user.password_hash = await self.passwords.hash(password)
            await self.repository.flush()
        return user
