"""Regions named in configuration exist from the first start on."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from edgelib.db import Database
from edgelib.uow import unit_of_work
from sv_region.models import Region, utcnow

logger = logging.getLogger("sv_region.seed")


async def seed_regions(database: Database, names: list[str]) -> None:
    """Create each configured region that is missing; existing ones are left alone."""
    try:
        async with unit_of_work(database) as session:
            existing = set((await session.execute(select(Region.name))).scalars())
            missing = [n for n in names if n not in existing]
            for name in missing:
                session.add(Region(name=name, status="active", created_at=utcnow()))
    except IntegrityError:
        # Another instance seeded them at the same moment.
        return
    if missing:
        logger.info("regions created", extra={"regions": missing})
