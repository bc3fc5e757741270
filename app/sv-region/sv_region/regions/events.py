"""Change events on the backend's pub/sub, published after the change is committed."""

from __future__ import annotations

import logging
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from edgelib.backends import Backend, BackendError
from edgelib.uow import after_commit

logger = logging.getLogger("sv_region.events")

#: A user's region changed: the message is the user id ("*": forget everyone).
DIRECTORY_CHANNEL = "edge.directory"
#: A region or an assignment rule changed: the message is the region name ("*": several).
REGIONS_CHANNEL = "edge.regions"


def announce(session: AsyncSession, backend: Backend, channel: str, message: str) -> None:
    """Publish ``message`` on ``channel`` once ``session``'s transaction has committed."""
    after_commit(session, partial(_publish, backend, channel, message))


async def _publish(backend: Backend, channel: str, message: str) -> None:
    # Best effort: caches also expire on their own, so a lost event only delays them.
    try:
        await backend.publish(channel, message.encode())
    except BackendError as exc:
        logger.warning("change event not published", extra={"channel": channel, "error": str(exc)})
