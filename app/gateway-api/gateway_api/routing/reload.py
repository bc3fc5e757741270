"""Hot reload of the route table file: a valid new table replaces the old one atomically.

Requests already routed keep the Route they matched, so nothing in flight is dropped;
an invalid file is logged and ignored, and the old table stays.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from edgelib.tasks import cancel
from gateway_api.routing.table import RouteTableError, load_routes

if TYPE_CHECKING:
    from gateway_api.gateway import Gateway

logger = logging.getLogger("gateway.routes")


class RouteWatcher:
    def __init__(self, gateway: Gateway, path: Path, *, interval: float = 0.5) -> None:
        self.gateway = gateway
        self.path = path
        self.interval = interval
        self._stamp = self._read_stamp()
        self._task: asyncio.Task[None] | None = None

    def _read_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-routes-watch")

    async def stop(self) -> None:
        await cancel(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.check()

    def check(self) -> bool:
        """Reload if the file changed; True when a new table was installed."""
        stamp = self._read_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            table = load_routes(self.path, self.gateway.routing.rules)
        except RouteTableError as exc:
            logger.error(
                "route table rejected; keeping the previous one", extra={"error": str(exc)}
            )
            return False
        self.gateway.routing.table = table
        logger.info("route table reloaded", extra={"routes": len(table.routes)})
        return True
