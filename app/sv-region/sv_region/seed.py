"""Regions named in configuration exist from the first start on."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from edgelib.db import Database
from edgelib.uow import unit_of_work
from sv_region.models import Region, utcnow

logger = logging.getLogger("sv_region.seed")


async def seed_regions(database: Database, names: list[str], discovery: str = "static") -> None:
    """Create each configured region that is missing, found by ``discovery`` (the stack's
    own: ``etcd:<prefix>`` when it registers in etcd, else ``static``; the gateway's
    pools follow it). A seeded region nobody has edited (``updated_at`` unset) follows a
    change of the stack's mode; one edited through the API is left alone."""
    try:
        async with unit_of_work(database) as session:
            regions = {r.name: r for r in (await session.execute(select(Region))).scalars()}
            missing = [n for n in names if n not in regions]
            for name in missing:
                session.add(
                    Region(name=name, status="active", discovery=discovery, created_at=utcnow())
                )
            moved = [
                r.name
                for r in regions.values()
                if r.name in names and r.updated_at is None and r.discovery != discovery
            ]
            for name in moved:
                regions[name].discovery = discovery
    except IntegrityError:
        # Another instance seeded them at the same moment.
        return
    if missing:
        logger.info("regions created", extra={"regions": missing, "discovery": discovery})
    if moved:
        logger.info(
            "seeded regions follow the stack", extra={"regions": moved, "discovery": discovery}
        )
