"""sv-log app: ``create_app()`` and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from edgelib.app import create_service_app
from edgelib.logship import LogShipper
from edgelib.settings import ServiceSettings, own_settings
from sv_log.body_limit import BodyLimitMiddleware
from sv_log.config import Settings
from sv_log.endpoints import INTAKE_PATH, internal, public
from sv_log.mongo import MongoLogStore
from sv_log.repository import SqlLogStore
from sv_log.retention import RetentionJob, RetentionPolicy
from sv_log.service import IntakeLimits, LogService
from sv_log.stats import endpoints as stats_endpoints
from sv_log.stats.repository import SqlStatsStore
from sv_log.stats.service import StatsRetention, StatsService
from sv_log.store import LogStore
from sv_log.tail import TailHub

MIGRATIONS = Path(__file__).parent / "migrations"
_INTAKE_PATHS = frozenset({INTAKE_PATH, stats_endpoints.STATS_INTAKE_PATH})


def _not_an_intake_line(record: logging.LogRecord) -> bool:
    """sv-log keeps its own records, but not one access line per accepted batch (of
    log records, or of the gateways' statistics)."""
    return not (
        record.name == "edge.access"
        and getattr(record, "path", None) in _INTAKE_PATHS
        and getattr(record, "status", None) == 202
    )


def create_app(base: ServiceSettings | None = None) -> FastAPI:
    settings = own_settings(base, Settings)
    mongo = settings.uses_mongodb

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store: LogStore
            if mongo:
                assert settings.database_url is not None
                store = MongoLogStore(settings.database_url)
                stack.push_async_callback(store.close)
                await store.prepare()
            else:
                store = SqlLogStore(app.state.database)
            hub = TailHub(app.state.backend, client_queue=settings.tail_queue)
            stack.push_async_callback(hub.close)
            service = LogService(
                store,
                hub,
                app.state.backend,
                IntakeLimits(
                    max_batch_bytes=settings.max_batch_bytes,
                    max_batch_records=settings.max_batch_records,
                    max_record_bytes=settings.max_record_bytes,
                ),
            )
            app.state.log_service = service
            stats: StatsService | None = None
            if not mongo:  # statistics need SQL (upserts that add): see doc/services/sv-log.md
                stats = app.state.stats_service = StatsService(
                    SqlStatsStore(app.state.database),
                    max_batch_bytes=settings.max_batch_bytes,
                    max_batch_rows=settings.stats_max_batch_rows,
                    max_points=settings.stats_max_points,
                    retention=StatsRetention(
                        minute_hours=settings.stats_minute_retention_hours,
                        hour_days=settings.stats_hour_retention_days,
                        day_days=settings.stats_day_retention_days,
                        batch_key_days=settings.stats_batch_key_days,
                    ),
                )
            retention = RetentionJob(
                store,
                RetentionPolicy(settings.retention_days, settings.retention_days_by_service),
                app.state.backend,
                interval=settings.retention_interval,
                stats=stats,
            )
            app.state.retention = retention
            retention.start()
            stack.push_async_callback(retention.stop)
            own_logs = LogShipper(service.store_own, max_queue=settings.log_ship_queue)
            await stack.enter_async_context(
                own_logs.installed(
                    service=settings.service_name,
                    instance=settings.instance_id,
                    region=settings.region,
                    record_filter=_not_an_intake_line,
                )
            )
            yield

    async def store_ready() -> None:
        await app.state.log_service.store.ping()

    app = create_service_app(
        settings,
        title="sv-log",
        description="Central log intake (signed, batched) and query, with a live tail.",
        migrations=None if mongo else MIGRATIONS,
        lifespan=lifespan,
        readiness={"store": store_ready} if mongo else None,
        api_prefix="/api/v1/logs",
    )
    app.include_router(internal)
    app.include_router(public)
    app.include_router(stats_endpoints.internal)
    app.include_router(stats_endpoints.public)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        paths=frozenset({INTAKE_PATH, stats_endpoints.STATS_INTAKE_PATH}),
    )
    return app
