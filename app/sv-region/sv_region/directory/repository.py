"""SQL of the directory."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sv_region.directory.models import DirectoryEntry
from sv_region.models import Region


class DirectoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_id(self, user_id: str) -> DirectoryEntry | None:
        return await self.session.get(DirectoryEntry, user_id)

    async def by_username(self, username: str) -> DirectoryEntry | None:
        result = await self.session.execute(
            select(DirectoryEntry).where(DirectoryEntry.username == username)
        )
        return result.scalar_one_or_none()

    async def page(
        self, *, prefix: str, region: str | None, after: str | None, limit: int
    ) -> list[DirectoryEntry]:
        """Entries whose username starts with ``prefix``, by username, after ``after``."""
        query = select(DirectoryEntry).order_by(DirectoryEntry.username).limit(limit)
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(DirectoryEntry.username.like(f"{escaped}%", escape="\\"))
        if region is not None:
            query = query.where(DirectoryEntry.region == region)
        if after is not None:
            query = query.where(DirectoryEntry.username > after)
        return list((await self.session.execute(query)).scalars())

    async def add(self, entry: DirectoryEntry) -> DirectoryEntry:
        self.session.add(entry)
        await self.session.flush()
        return entry

    async def remove(self, entry: DirectoryEntry) -> None:
        await self.session.delete(entry)
        await self.session.flush()

    async def active_regions(self) -> list[str]:
        result = await self.session.execute(
            select(Region.name).where(Region.status == "active").order_by(Region.name)
        )
        return list(result.scalars())
