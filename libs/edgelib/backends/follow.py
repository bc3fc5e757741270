"""Follow a pub/sub channel for as long as the process lives, resubscribing after failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edgelib.backends.base import Backend, BackendError


async def follow(
    backend: Backend,
    channel: str,
    on_message: Callable[[bytes], object],
    *,
    logger: logging.Logger,
    what: str,
    on_gap: Callable[[], object] | None = None,
    retry_after: float = 1.0,
) -> None:
    """Call ``on_message`` for every message on ``channel``; never returns (cancel it).

    When the backend fails, the failure is logged as "``what`` unavailable",
    ``on_gap`` runs (messages may have been missed meanwhile) and the subscription is
    made again after ``retry_after`` seconds.
    """
    while True:
        try:
            subscription = await backend.subscribe(channel)
            try:
                async for _, message in subscription:
                    on_message(message)
            finally:
                await subscription.close()
        except BackendError as exc:
            logger.warning(f"{what} unavailable", extra={"error": str(exc)})
            if on_gap is not None:
                on_gap()
            await asyncio.sleep(retry_after)
