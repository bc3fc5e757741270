"""Active health checks: probe every instance's ``/healthz`` on an interval."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from gateway_api.upstreams.pools import Instance, Upstreams

logger = logging.getLogger("gateway.health")


class HealthChecker:
    def __init__(
        self,
        upstreams: Upstreams,
        session: aiohttp.ClientSession,
        *,
        interval: float,
        timeout: float,
        healthy_threshold: int,
        unhealthy_threshold: int,
    ) -> None:
        self.upstreams = upstreams
        self.session = session
        self.interval = interval
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.healthy_threshold = healthy_threshold
        self.unhealthy_threshold = unhealthy_threshold
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            await self.probe_all()
            await asyncio.sleep(self.interval)

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(i) for i in self.upstreams.all_instances()))

    async def probe(self, instance: Instance) -> None:
        try:
            async with self.session.get(instance.url + "/healthz", timeout=self.timeout) as resp:
                ok = resp.status == 200
                await resp.read()
                error = None if ok else f"status {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok, error = False, type(exc).__name__
        instance.last_probe = time.monotonic()
        self.record(instance, ok, error)

    def record(self, instance: Instance, ok: bool, error: str | None) -> None:
        if ok:
            instance.consecutive_failures = 0
            instance.consecutive_successes += 1
            if not instance.healthy and instance.consecutive_successes >= self.healthy_threshold:
                instance.healthy = True
                instance.last_error = None
                instance.breaker.reset()
                extra: dict[str, object] = {"upstream": instance.spec.id}
                if instance.joined and not instance.ready_at:
                    # Joined through discovery: from now on it takes traffic.
                    instance.ready_at = time.monotonic()
                    extra["join_to_ready_s"] = round(instance.ready_at - instance.joined, 4)
                logger.info("instance up", extra=extra)
        else:
            instance.consecutive_successes = 0
            instance.consecutive_failures += 1
            instance.last_error = error
            if instance.healthy and instance.consecutive_failures >= self.unhealthy_threshold:
                instance.healthy = False
                logger.warning(
                    "instance down", extra={"instance": instance.spec.id, "error": error}
                )
