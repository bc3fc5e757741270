"""SQL of regions and assignment rules."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sv_region.directory.models import DirectoryEntry
from sv_region.models import Region
from sv_region.regions.models import AssignmentRule


class RegionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self) -> list[Region]:
        return list((await self.session.execute(select(Region).order_by(Region.name))).scalars())

    async def get(self, name: str) -> Region | None:
        return await self.session.get(Region, name)

    async def add(self, region: Region) -> Region:
        self.session.add(region)
        await self.session.flush()
        return region

    async def remove(self, region: Region) -> None:
        await self.session.delete(region)
        await self.session.flush()

    async def residents(self, name: str) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(DirectoryEntry).where(DirectoryEntry.region == name)
        )
        return int(result.scalar_one())

    async def rules(self) -> list[AssignmentRule]:
        result = await self.session.execute(
            select(AssignmentRule).order_by(AssignmentRule.priority, AssignmentRule.id)
        )
        return list(result.scalars())

    async def rule(self, rule_id: int) -> AssignmentRule | None:
        return await self.session.get(AssignmentRule, rule_id)

    async def rule_for(self, kind: str, match: str) -> AssignmentRule | None:
        result = await self.session.execute(
            select(AssignmentRule).where(AssignmentRule.kind == kind, AssignmentRule.match == match)
        )
        return result.scalar_one_or_none()

    async def add_rule(self, rule: AssignmentRule) -> AssignmentRule:
        self.session.add(rule)
        await self.session.flush()
        return rule

    async def remove_rule(self, rule: AssignmentRule) -> None:
        await self.session.delete(rule)
        await self.session.flush()
