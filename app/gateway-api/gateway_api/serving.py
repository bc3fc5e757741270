"""One gateway process: the public listener and (worker 0) the admin listener.

Run by ``python -m gateway_api`` (:mod:`gateway_api.__main__`), which reads the
settings once and switches the compiled hot path on before importing this.

With ``GATEWAY_WORKERS=N`` (N > 1) this process is worker 0: it serves the admin
listener and the public port, and starts N-1 more worker processes that serve the
same public port (``SO_REUSEPORT``: the kernel spreads connections over them). See
:mod:`gateway_api.workers` for what the workers share and how.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import uuid
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI

from edgelib.runner import freeze_startup_heap
from edgelib.tasks import cancel
from edgelib.tracing import otlp_traces_endpoint
from gateway_api.admin.app import create_app
from gateway_api.config import Settings
from gateway_api.console.public import PublicConsole
from gateway_api.gateway import Gateway
from gateway_api.proxy import create_public_app
from gateway_api.rpc.proxy import GrpcProxy
from gateway_api.statship import HttpStatsSink, StatsShipper
from gateway_api.tracecontext import TraceContext
from gateway_api.transport.h2 import enable_http2
from gateway_api.transport.server import HttpServer
from gateway_api.transport.streams import (
    Resolver,
    StreamConfigError,
    StreamProxy,
    StreamRoute,
    load_streams,
)
from gateway_api.transport.tls import TlsFiles
from gateway_api.workers import (
    MetricsEndpoint,
    WorkerPool,
    WorkerStats,
    stats_dir,
    watch_parent,
)

logger = logging.getLogger("gateway")


def raise_open_files_limit(connections: int) -> int:
    """Lift the soft limit on open files towards the hard one, so that ``connections``
    clients (plus upstreams and files) fit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * connections + 1024  # a client and an upstream socket each, and some
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def _check_open_files(settings: Settings) -> None:
    open_files = raise_open_files_limit(settings.max_connections)
    if open_files < settings.max_connections + 64:
        logger.warning(
            "the open-files limit is below GATEWAY_MAX_CONNECTIONS",
            extra={"nofile": open_files, "max_connections": settings.max_connections},
        )


async def _start_admin(
    settings: Settings, admin_app: FastAPI
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Worker 0's admin listener, once it listens (``SystemExit`` when it cannot)."""
    admin = uvicorn.Server(
        uvicorn.Config(
            admin_app,
            host=settings.admin_host,
            port=settings.admin_port,
            log_config=None,
            access_log=False,
            server_header=False,
            lifespan="off",
        )
    )
    admin_task = asyncio.create_task(admin.serve())
    while not admin.started:
        if admin_task.done():
            await admin_task
            raise SystemExit("gateway admin listener failed to start")
        await asyncio.sleep(0.02)
    return admin, admin_task


def _public_handler(settings: Settings, gateway: Gateway, admin_app: FastAPI) -> Any:
    """The proxy; with ``GATEWAY_CONSOLE_PUBLIC``, ``/admin`` goes to the console first."""
    proxy = create_public_app(gateway)
    console_app = getattr(admin_app.state, "console_app", None)
    if settings.console_public and console_app is not None:
        return PublicConsole(proxy, console_app)
    return proxy


def _public_server(settings: Settings, proxy: Any, grpc: GrpcProxy | None = None) -> HttpServer:
    """The public listener's server: HTTP/1.1, and h2c when ``GATEWAY_HTTP2`` is on (gRPC
    calls, HTTP/2 only, to ``grpc``)."""
    public = HttpServer(
        proxy,
        bad_request=proxy.bad_request,
        keep_alive_timeout=settings.keep_alive_timeout,
        trusted_proxies=settings.trusted_peers(),
        limits=settings.client_limits(),
    )
    if settings.http2:
        enable_http2(public, settings.h2_limits(), grpc)
    return public


def _stats_shipper(settings: Settings, gateway: Gateway, worker: int) -> StatsShipper | None:
    """Ship this worker's traffic statistics to sv-log (the ``stats_url`` or the
    topology's healthy sv-log instances); unsent batches wait in a spool file."""
    if gateway.stats is None:
        return None
    fixed = [u.strip() for u in (settings.stats_url or "").split(",") if u.strip()]

    def urls() -> list[str]:
        if fixed:
            return fixed
        pool = gateway.upstreams.pool("sv-log", None)
        instances = [] if pool is None else pool.instances
        healthy = [i.url for i in instances if i.healthy]
        return healthy or [i.url for i in instances]

    shipper = StatsShipper(
        gateway.stats,
        HttpStatsSink(urls, gateway.security.signer.to("sv-log")),
        interval=settings.stats_interval,
        batch_rows=settings.stats_batch_rows,
        max_pending_rows=settings.stats_max_pending_rows,
        spool=stats_dir(settings) / f"stats-{worker}.spool.json",
        key_prefix=f"{settings.instance_id}-{worker}-{uuid.uuid4().hex[:12]}",
    )
    gateway.stats_shipper = shipper
    shipper.start()
    return shipper


async def _listen(settings: Settings, public: HttpServer, *, reuse_port: bool) -> TlsFiles | None:
    """Open the public port, over TLS when certificate files are set (then followed)."""
    tls = settings.tls()
    context = None if tls is None else tls.context
    await public.start(settings.host, settings.port, reuse_port=reuse_port, ssl=context)
    if tls is not None:
        tls.start()
    return tls


async def _close_public(public: HttpServer, tls: TlsFiles | None) -> None:
    """Let requests in flight finish, close the port, stop following the TLS files."""
    await public.stop()
    if tls is not None:
        await tls.stop()


async def _stop_stats(shipper: StatsShipper | None) -> None:
    """Ship what is left (one bounded try), spool the rest."""
    if shipper is not None:
        await shipper.stop()


def _stream_routes(settings: Settings) -> list[StreamRoute]:
    if settings.streams is None:
        return []
    try:
        return load_streams(settings.streams)
    except StreamConfigError as exc:
        raise SystemExit(f"gateway: GATEWAY_STREAMS: {exc}") from None


def _pool_addresses(gateway: Gateway) -> Resolver:
    """A stream route's upstreams by service: the gateway's pool (topology or discovery)."""

    def resolve(service: str, region: str | None) -> list[tuple[str, int]]:
        pool = gateway.upstreams.pool(service, region)
        addresses = []
        for instance in pool.instances if pool is not None else []:
            url = urlsplit(instance.url)
            if not instance.draining and url.hostname and url.port:
                addresses.append((url.hostname, url.port))
        return addresses

    return resolve


async def serve(settings: Settings, worker: int = 0) -> None:
    _check_open_files(settings)
    routes = _stream_routes(settings)  # a bad file stops the start before anything binds
    gateway = Gateway(settings)
    streams = [StreamProxy(route, _pool_addresses(gateway)) for route in routes]
    # Every worker follows discovery (its Gateway); only worker 0 registers the node,
    # under its one instance id, so one worker stopping never deregisters the others.
    app_settings = settings if worker == 0 else settings.model_copy(update={"discovery": "static"})
    admin_app = create_app(app_settings, gateway)
    TraceContext.record_spans = otlp_traces_endpoint() is not None
    workers = max(1, settings.workers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    admin: uvicorn.Server | None = None
    admin_task: asyncio.Task[None] | None = None
    async with admin_app.router.lifespan_context(admin_app):
        if worker == 0:
            admin, admin_task = await _start_admin(settings, admin_app)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        proxy = _public_handler(settings, gateway, admin_app)
        grpc = GrpcProxy(gateway)
        public = _public_server(settings, proxy, grpc)
        tls = await _listen(settings, public, reuse_port=workers > 1)
        for stream in streams:
            await stream.start(settings.host, reuse_port=workers > 1)
        admin_app.state.streams = streams
        shipper = _stats_shipper(settings, gateway, worker)
        freeze_startup_heap()  # routes, policy, keys and modules: no more full-heap walks
        stats = WorkerStats(settings, gateway, worker)
        stats.start()
        endpoint: MetricsEndpoint | None = None
        if worker > 0:
            endpoint = MetricsEndpoint(settings, gateway, worker)
            await endpoint.start()
        pool: WorkerPool | None = None
        if worker == 0 and workers > 1:
            pool = WorkerPool(workers - 1)
            pool.start()
        if worker > 0:
            watch_parent(stop)
        stopped = asyncio.create_task(stop.wait())
        waits = {stopped}
        if admin_task is not None:
            waits.add(admin_task)  # type: ignore[arg-type]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        await cancel(stopped)  # still waiting when the admin listener ended first
        if pool is not None:
            await pool.stop()
        await stats.stop()
        for stream in streams:
            await stream.stop()
        await _close_public(public, tls)
        await _stop_stats(shipper)  # after the listener: the last requests are counted
        if endpoint is not None:
            await endpoint.stop()
        proxy.close()
        grpc.close()
        if admin is not None and admin_task is not None:
            admin.should_exit = True
            await asyncio.gather(admin_task, return_exceptions=True)
