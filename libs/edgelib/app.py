"""The service app factory: health, readiness, metrics, tracing, logs and errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from starlette.responses import Response

from edgelib.about import about_router
from edgelib.backends import Backend, open_backend
from edgelib.client import ServiceClient
from edgelib.db import Database
from edgelib.discovery.service import registration
from edgelib.fastroutes import install_fast_routes
from edgelib.logs import configure_logging, flush_logs
from edgelib.logship import HttpSink, LogShipper
from edgelib.middleware import HttpMetrics, RequestContextMiddleware
from edgelib.migrations import upgrade_async
from edgelib.openapi import install_problem_openapi
from edgelib.permissions import PolicyPermissions
from edgelib.problems import install_problem_handlers, problem_response
from edgelib.replay import ReplayCache
from edgelib.settings import ServiceSettings
from edgelib.signing import ServiceSigner
from edgelib.tracing import (
    configure_tracing,
    install_trace_context,
    otlp_traces_endpoint,
    shutdown_tracing,
)

logger = logging.getLogger("edgelib.app")

#: The policy's owner, which services ask about their admin endpoints' permissions.
AUTH_RBAC = "auth-rbac"

ServiceLifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
ReadinessCheck = Callable[[], Awaitable[None]]
#: Gives a JSON-able value shown under its name in ``/readyz`` (a config version, say).
ReadinessDetail = Callable[[], Any]


def add_readiness_detail(app: FastAPI, name: str, detail: ReadinessDetail) -> None:
    """Show ``detail()`` as ``name`` in the app's ``/readyz`` answer (never fails it)."""
    app.state.readiness_details[name] = detail


def default_database_url(settings: ServiceSettings) -> str:
    """SQLite file under ``var/data`` named after the service and its region."""
    name = settings.service_name + (f"-{settings.region}" if settings.region else "")
    return f"sqlite+aiosqlite:///{settings.var_dir / 'data' / name}.db"


def default_schema(settings: ServiceSettings) -> str:
    """PostgreSQL schema for this service's data, one per service and region."""
    name = settings.service_name + (f"_{settings.region}" if settings.region else "")
    return name.replace("-", "_").lower()


def version_table(settings: ServiceSettings) -> str:
    return "alembic_version_" + settings.service_name.replace("-", "_")


async def migrate(settings: ServiceSettings, migrations: Path) -> None:
    """Apply the service's migrations to its configured database."""
    await upgrade_async(
        migrations,
        settings.database_url or default_database_url(settings),
        schema=settings.database_schema or default_schema(settings),
        version_table=version_table(settings),
        lock_dir=settings.var_dir / "run",
    )


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    version: str = "0.1.0",
    description: str = "",
    migrations: Path | None = None,
    lifespan: ServiceLifespan | None = None,
    readiness: dict[str, ReadinessCheck] | None = None,
    api_prefix: str | None = None,
    fast_routes: bool = True,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with the platform's plumbing around the service's own lifespan.

    When ``migrations`` is given the service owns a database: its engine is made in
    the lifespan (``app.state.database``) and, in the local profile or with
    ``migrate_on_start``, its migrations are applied before it serves. With
    ``api_prefix`` the app also answers ``GET {api_prefix}/about`` publicly;
    ``GET /internal/about`` is always there for signed callers. With ``fast_routes``
    (the default) the routes FastAPI would answer through its general dependency
    solver are answered from a precompiled table instead (:mod:`edgelib.fastroutes`);
    ``False`` leaves every request to FastAPI's router.
    """
    extra_checks = dict(readiness or {})

    @asynccontextmanager
    async def platform_lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(
            service=settings.service_name,
            instance=settings.instance_id,
            region=settings.region,
            level=settings.log_level,
            json=settings.log_json,
        )
        configure_tracing(
            service=settings.service_name,
            instance=settings.instance_id,
            region=settings.region,
            endpoint=otlp_traces_endpoint(),
        )
        async with AsyncExitStack() as stack:
            stack.callback(flush_logs)  # the lines still waiting in the buffer (logs.py)
            stack.callback(shutdown_tracing)  # last out: spans of the stop are exported too
            app.state.settings = settings
            signer = app.state.signer = ServiceSigner(
                settings.service_name, settings.keyring(), max_skew=settings.signature_max_skew
            )
            if settings.log_url:
                await _ship_logs(app, settings, signer, stack)
            backend = open_backend(settings.redis_url)
            stack.push_async_callback(backend.close)
            app.state.backend = backend
            app.state.replay = ReplayCache(
                backend, settings.service_name, max_skew=settings.signature_max_skew
            )
            _open_permissions(app, settings, signer, stack)
            if migrations is not None:
                await _open_database(app, settings, migrations, stack)
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app))
            if settings.discovery == "etcd":
                # Last in, first out: registered once serving, deregistered before the rest.
                app.state.registrar = await stack.enter_async_context(
                    registration(settings, version=version)
                )
            logger.info(
                "service started",
                extra={"port": settings.port, "profile": settings.profile},
            )
            yield
            logger.info("service stopping")

    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=platform_lifespan,
        # edgelib.tracing makes the server spans (and ids when nothing is exported);
        # FastAPI's own OpenTelemetry bridge would add a second span and per-request work.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        **fastapi_kwargs,
    )
    app.state.readiness_details = {}
    # Eligible routes are answered from a precompiled table, the rest by FastAPI's
    # router (edgelib.fastroutes; the routes and the OpenAPI document are unchanged).
    if fast_routes:
        install_fast_routes(app)
    install_problem_handlers(app)
    install_problem_openapi(app)
    # HTTP metrics live in a registry of this app's own (several apps may share a
    # process, in tests or in the gateway); /metrics serves it with the process-wide
    # registry, where the service's own metrics are.
    http_metrics = HttpMetrics(settings.service_name)
    http_registry = CollectorRegistry(auto_describe=True)
    http_registry.register(http_metrics)
    app.state.http_metrics = http_metrics
    app.add_middleware(
        RequestContextMiddleware, instance=settings.instance_id, metrics=http_metrics
    )
    # Around everything (the access log, the 500 handler), so all carry the trace id.
    install_trace_context(app)

    _install_probes(app, settings, extra_checks)
    app.include_router(about_router(api_prefix))

    #: More exposition text for /metrics (the gateway's counters merged across workers).
    app.state.metrics_sources = []

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = generate_latest(REGISTRY) + generate_latest(http_registry)
        for source in app.state.metrics_sources:
            body += await source()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app


async def _ship_logs(
    app: FastAPI, settings: ServiceSettings, signer: ServiceSigner, stack: AsyncExitStack
) -> None:
    """Ship this service's log records to sv-log, for as long as ``stack`` is open."""
    assert settings.log_url
    shipper = LogShipper(
        HttpSink(settings.log_url, signer.to("sv-log")),
        max_queue=settings.log_ship_queue,
    )
    app.state.log_shipper = await stack.enter_async_context(
        shipper.installed(
            service=settings.service_name,
            instance=settings.instance_id,
            region=settings.region,
        )
    )


def _open_permissions(
    app: FastAPI, settings: ServiceSettings, signer: ServiceSigner, stack: AsyncExitStack
) -> None:
    """Ask auth-rbac for permissions, unless this is auth-rbac, the app already has a
    source of permissions (a test's), or this service may not call auth-rbac."""
    if (
        settings.service_name == AUTH_RBAC
        or getattr(app.state, "permissions", None) is not None
        or not signer.can_sign_for(AUTH_RBAC)
    ):
        return
    permissions = PolicyPermissions(
        ServiceClient(settings.auth_rbac_url, signer=signer.to(AUTH_RBAC)),
        ttl=settings.permission_cache_ttl,
    )
    stack.push_async_callback(permissions.aclose)
    stack.callback(setattr, app.state, "permissions", None)
    app.state.permissions = permissions


async def _open_database(
    app: FastAPI, settings: ServiceSettings, migrations: Path, stack: AsyncExitStack
) -> None:
    """The service's database (``app.state.database``), migrated first when it should be."""
    if settings.is_local or settings.migrate_on_start:
        await migrate(settings, migrations)
    database = Database(
        settings.database_url or default_database_url(settings),
        schema=settings.database_schema or default_schema(settings),
    )
    stack.push_async_callback(database.dispose)
    app.state.database = database


def _install_probes(
    app: FastAPI, settings: ServiceSettings, extra_checks: dict[str, ReadinessCheck]
) -> None:
    """``GET /healthz`` (the process answers) and ``GET /readyz`` (its dependencies do)."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": settings.service_name, "instance": settings.instance_id}

    @app.get("/readyz", include_in_schema=False, response_model=None)
    async def readyz() -> Any:
        checks: dict[str, str] = {}
        ok = True
        probes: dict[str, ReadinessCheck] = {}
        database: Database | None = getattr(app.state, "database", None)
        if database is not None:
            probes["database"] = database.ping
        backend: Backend | None = getattr(app.state, "backend", None)
        if backend is not None:
            probes["backend"] = backend.ping
        probes.update(extra_checks)
        for name, probe in probes.items():
            try:
                await probe()
                checks[name] = "ok"
            except Exception as exc:
                ok = False
                checks[name] = f"failed: {type(exc).__name__}"
        if not ok:
            return problem_response(
                503, "not-ready", "Not ready", "A dependency is not answering.", checks=checks
            )
        body: dict[str, Any] = {"status": "ready", "service": settings.service_name}
        for name, detail in app.state.readiness_details.items():
            try:
                body.setdefault(name, detail())
            except Exception as exc:
                body.setdefault(name, f"failed: {type(exc).__name__}")
        body["checks"] = checks
        return body
