"""Passive ejections shared between gateway workers (and gateways) through the backend.

Each worker's circuit breakers learn from the requests that worker forwards. When one
opens (an instance failed ``threshold`` times in a row, or its half-open trial failed),
the worker publishes ``<origin>|<instance id>|<cool-down>`` on the backend's
``edge:gateway:ejections`` channel, and every other worker opens its own breaker for
that instance for the same cool-down: a hung instance costs the platform one worker's
timeouts, not every worker's. Each worker still lets its own half-open trial through
when the cool-down ends, and its own active health checks run as before.

With Redis this reaches every worker of every gateway process; the in-process backend
only has the one process, where there is nobody to tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable

from edgelib.backends import Backend, BackendError, follow
from gateway_api.upstreams.pools import Instance, Upstreams

logger = logging.getLogger("gateway.ejections")

CHANNEL = "edge:gateway:ejections"


class EjectionBus:
    def __init__(self, upstreams: Upstreams, backend: Backend) -> None:
        self.upstreams = upstreams
        self.backend = backend
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._by_id: dict[str, Instance] = {i.spec.id: i for i in upstreams.all_instances()}
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.applied = 0

    def adopt(self, instance: Instance) -> None:
        """Share this instance's ejections too (it joined through discovery)."""
        self._by_id[instance.spec.id] = instance
        instance.breaker.on_open = self._announcer(instance)

    def forget(self, instance: Instance) -> None:
        """It left its pool: a peer's ejection of it no longer applies here."""
        if self._by_id.get(instance.spec.id) is instance:
            del self._by_id[instance.spec.id]

    async def start(self) -> None:
        for instance in self._by_id.values():
            instance.breaker.on_open = self._announcer(instance)
        self._task = asyncio.create_task(self._listen(), name="gateway-ejections")

    async def stop(self) -> None:
        for instance in self._by_id.values():
            instance.breaker.on_open = None
        tasks = [t for t in (self._task, *self._sends) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _announcer(self, instance: Instance) -> Callable[[float], None]:
        def announce(cool_down: float) -> None:
            message = f"{self.origin}|{instance.spec.id}|{cool_down:.3f}".encode()
            task = asyncio.get_running_loop().create_task(self._send(message))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

        return announce

    async def _send(self, message: bytes) -> None:
        try:
            await self.backend.publish(CHANNEL, message)
            self.sent += 1
        except BackendError as exc:
            logger.warning("ejection not shared", extra={"error": str(exc)})

    def apply(self, message: bytes) -> bool:
        """Open the named instance's breaker unless the message is ours or unknown."""
        try:
            origin, instance_id, cool_down = message.decode().split("|")
            seconds = float(cool_down)
        except ValueError:
            return False
        instance = self._by_id.get(instance_id)
        if origin == self.origin or instance is None:
            return False
        if instance.breaker.open_by_peer(time.monotonic(), seconds):
            self.applied += 1
            logger.warning(
                "instance ejected by a peer",
                extra={"instance": instance_id, "cool_down_s": seconds},
            )
            return True
        return False

    async def _listen(self) -> None:
        await follow(self.backend, CHANNEL, self.apply, logger=logger, what="ejections from peers")
