"""What each service's ``__main__`` calls: serve it, or apply its migrations."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
from collections.abc import Callable
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from edgelib.app import migrate
from edgelib.discovery.service import DeregisteringServer
from edgelib.settings import ServiceSettings


def enter_workspace() -> None:
    """Under ``bazel run``, work from the workspace so relative paths (``var/``) mean the same."""
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if workspace:
        os.chdir(workspace)


def freeze_startup_heap() -> None:
    """Take what start-up built (modules, settings, apps) out of the cyclic collector's walk.

    A full collection walks every tracked object: in the gateway, about 150,000 of them
    and 100 ms, seen as 50-60 ms p99 spikes in ``make bench-gateway`` (doc/performance.md).
    Frozen objects are still freed by reference counting; only cycles among them stay.
    """
    gc.collect()
    gc.freeze()


def run_service(
    settings_factory: Callable[[], ServiceSettings],
    app_factory: Callable[[ServiceSettings], FastAPI],
    *,
    migrations: Path | None = None,
    argv: list[str] | None = None,
) -> None:
    """``serve`` (default) runs the app on its host and port; ``migrate`` upgrades its DB."""
    enter_workspace()
    parser = argparse.ArgumentParser()
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args(argv)
    settings = settings_factory()
    if args.command == "migrate":
        if migrations is None:
            parser.exit(0, f"{settings.service_name} has no database\n")
        asyncio.run(migrate(settings, migrations))
        return
    app = app_factory(settings)
    freeze_startup_heap()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        # The client address behind the gateway is edgelib.forwarded's to find, with the
        # service's own trusted proxies and hops: uvicorn's rewrite (it trusts 127.0.0.1
        # by default) would consume a hop first, and costs every request a header scan.
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    # With discovery on, a stop deregisters before the listener closes (doc/discovery.md).
    DeregisteringServer(config, app, drain_delay=settings.discovery_drain_delay).run()
