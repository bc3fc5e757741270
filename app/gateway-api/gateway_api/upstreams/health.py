"""Active health checks: probe every instance's ``/healthz`` on an interval.

The instances of a gRPC pool (one a ``[[grpc_routes]]`` entry names) are asked with the
gRPC health-checking protocol instead: ``grpc.health.v1.Health/Check`` for the server as
a whole (``service = ""``), healthy when it answers ``SERVING``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp

from edgelib.tasks import cancel
from gateway_api.transport.h2_client import H2Client, H2Error, header_value
from gateway_api.upstreams.pools import Instance, Upstreams

#: ``grpc.health.v1.HealthCheckRequest{service: ""}``: an uncompressed message of 0 bytes.
_HEALTH_REQUEST = b"\x00\x00\x00\x00\x00"
#: ``HealthCheckResponse{status: SERVING}``: field 1, varint 1.
_SERVING = b"\x08\x01"
_HEALTH_PATH = b"/grpc.health.v1.Health/Check"

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
        grpc_client: H2Client | None = None,
        grpc_pools: Callable[[], frozenset[str]] | None = None,
    ) -> None:
        self.upstreams = upstreams
        self.grpc_client = grpc_client
        #: The pools probed with grpc.health.v1 (the route table's gRPC pools, as it is now).
        self.grpc_pools = grpc_pools
        self.timeout_seconds = timeout
        self.session = session
        self.interval = interval
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.healthy_threshold = healthy_threshold
        self.unhealthy_threshold = unhealthy_threshold
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-health")

    async def stop(self) -> None:
        await cancel(self._task)

    async def _run(self) -> None:
        while True:
            await self.probe_all()
            await asyncio.sleep(self.interval)

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(i) for i in self.upstreams.all_instances()))

    async def probe(self, instance: Instance) -> None:
        if self.grpc_pools is not None and instance.spec.service in self.grpc_pools():
            await self.probe_grpc(instance)
            return
        try:
            async with self.session.get(instance.url + "/healthz", timeout=self.timeout) as resp:
                ok = resp.status == 200
                await resp.read()
                error = None if ok else f"status {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok, error = False, type(exc).__name__
        instance.last_probe = time.monotonic()
        self.record(instance, ok, error)

    async def probe_grpc(self, instance: Instance) -> None:
        """``grpc.health.v1.Health/Check`` over the gateway's HTTP/2 connections."""
        assert self.grpc_client is not None
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", _HEALTH_PATH),
            (b":authority", instance.host),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
        ]
        stream = None
        try:
            async with asyncio.timeout(self.timeout_seconds):
                stream = await self.grpc_client.open(
                    instance.url, headers, connect_timeout=self.timeout_seconds
                )
                await stream.send(_HEALTH_REQUEST, end=True)
                head = await stream.response()
                data = b""
                while len(data) < 64 and (chunk := await stream.read()):
                    data += chunk
            status = header_value(stream.trailers or head, b"grpc-status")
            ok = status == b"0" and data[5:] == _SERVING
            error = None if ok else f"grpc-status {status!r}, {data[5:]!r}"
        except (H2Error, TimeoutError) as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        finally:
            if stream is not None:
                stream.finish()
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
