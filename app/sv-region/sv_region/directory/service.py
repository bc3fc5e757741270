"""The directory's rules: reserve, confirm, release and look up usernames."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from sv_region.directory.exceptions import (
    EntryAlreadyActive,
    EntryNotFound,
    UnknownRegion,
    UsernameTaken,
)
from sv_region.directory.models import ACTIVE, PENDING, DirectoryEntry
from sv_region.directory.repository import DirectoryRepository
from sv_region.models import utcnow
from sv_region.regions.repository import RegionRepository
from sv_region.regions.service import RegionCatalog


def normalize_username(username: str) -> str:
    """Usernames are unique regardless of case."""
    return username.strip().lower()


class RegionDirectory:
    def __init__(self, repository: DirectoryRepository, *, pending_ttl: float) -> None:
        self.repository = repository
        self.pending_ttl = timedelta(seconds=pending_ttl)

    async def reserve(
        self,
        username: str,
        *,
        region: str | None,
        user_id: str | None,
        phone: str | None = None,
        address: str | None = None,
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
        if region is None:
            region, _ = await RegionCatalog(RegionRepository(self.repository.session)).assign(
                name, phone=phone, address=address
            )
        elif region not in await self.repository.active_regions():
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

    async def move(self, user_id: str, region: str) -> DirectoryEntry:
        """Point an active user at ``region``."""
        entry = await self.lookup(user_id)
        entry.region = region
        return entry

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

    async def search(
        self, query: str, *, region: str | None, after: str | None, limit: int
    ) -> tuple[list[DirectoryEntry], str | None]:
        """Entries by username: a user id finds its entry, anything else is a username
        prefix; returns one page and the ``after`` of the next (None at the end)."""
        text = normalize_username(query)
        try:
            user_id = str(uuid.UUID(text))
        except ValueError:
            user_id = None
        if user_id is not None:
            entry = await self.repository.by_id(user_id)
            found = [] if entry is None or (region and entry.region != region) else [entry]
            return found, None
        entries = await self.repository.page(
            prefix=text, region=region, after=after, limit=limit + 1
        )
        if len(entries) > limit:
            return entries[:limit], entries[limit - 1].username
        return entries, None

    async def entry(self, user_id: str) -> DirectoryEntry:
        """Any entry of a user id, pending or active."""
        entry = await self.repository.by_id(user_id)
        if entry is None:
            raise EntryNotFound(f"no user {user_id}")
        return entry
