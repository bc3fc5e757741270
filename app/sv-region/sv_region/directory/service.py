"""The directory's rules: reserve, confirm, release and look up usernames."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from sv_region.directory.exceptions import (
    EntryAlreadyActive,
    EntryNotFound,
    NoActiveRegion,
    UnknownRegion,
    UsernameTaken,
)
from sv_region.directory.models import ACTIVE, PENDING, DirectoryEntry
from sv_region.directory.repository import DirectoryRepository
from sv_region.models import utcnow


def normalize_username(username: str) -> str:
    """Usernames are unique regardless of case."""
    return username.strip().lower()


def assign_region(username: str, regions: list[str]) -> str:
    """The assignment rule: a stable hash of the username over the active regions.

    Spreads new users evenly and gives the same answer on every instance.
    """
    if not regions:
        raise NoActiveRegion("no region is active to take new users")
    digest = hashlib.sha256(username.encode()).digest()
    return sorted(regions)[int.from_bytes(digest[:8], "big") % len(regions)]


class RegionDirectory:
    def __init__(self, repository: DirectoryRepository, *, pending_ttl: float) -> None:
        self.repository = repository
        self.pending_ttl = timedelta(seconds=pending_ttl)

    async def reserve(
        self, username: str, *, region: str | None, user_id: str | None
    ) -> DirectoryEntry:
        """Hold ``username`` for a registration in progress, in ``region`` or an assigned one."""
        name = normalize_username(username)
        existing = await self.repository.by_username(name)
        if existing is not None:
            if user_id is not None and existing.user_id == user_id:
                return existing  # a retried reservation
            abandoned = existing.status == PENDING and (
                utcnow() - existing.created_at > self.pending_ttl
            )
            if not abandoned:
                raise UsernameTaken(f"the username {name!r} is taken")
            await self.repository.remove(existing)
        regions = await self.repository.active_regions()
        if region is None:
            region = assign_region(name, regions)
        elif region not in regions:
            raise UnknownRegion(f"region {region!r} is not an active region")
        entry = DirectoryEntry(
            user_id=user_id or str(uuid.uuid4()),
            username=name,
            region=region,
            status=PENDING,
            created_at=utcnow(),
        )
        try:
            return await self.repository.add(entry)
        except IntegrityError as exc:
            # A concurrent registration won the race for this name (or this id).
            raise UsernameTaken(f"the username {name!r} is taken") from exc

    async def confirm(self, user_id: str) -> DirectoryEntry:
        """Mark a reservation active: the account now exists in its region."""
        entry = await self.repository.by_id(user_id)
        if entry is None:
            raise EntryNotFound(f"no reservation for user {user_id}")
        entry.status = ACTIVE
        return entry

    async def release(self, user_id: str) -> None:
        """Give a pending reservation's username back; active entries stay."""
        entry = await self.repository.by_id(user_id)
        if entry is None:
            return
        if entry.status == ACTIVE:
            raise EntryAlreadyActive(f"user {user_id} exists; its directory entry stays")
        await self.repository.remove(entry)

    async def lookup(self, user_id: str) -> DirectoryEntry:
        """The active entry of a user id."""
        entry = await self.repository.by_id(user_id)
        if entry is None or entry.status != ACTIVE:
            raise EntryNotFound(f"no user {user_id}")
        return entry

    async def lookup_username(self, username: str) -> DirectoryEntry:
        """The active entry of a username."""
        entry = await self.repository.by_username(normalize_username(username))
        if entry is None or entry.status != ACTIVE:
            raise EntryNotFound("no such username")
        return entry
