"""``python -m gateway_api``: the entry point. It switches the compiled hot path on
(:func:`gateway_api.native.activate`) before any other gateway module is imported,
reads the :class:`~gateway_api.config.Settings` once, and runs
:func:`gateway_api.serving.serve` on uvloop.

With ``GATEWAY_WORKERS=N`` (N > 1) this process is worker 0 and starts N-1 more
(:mod:`gateway_api.workers`).
"""

from __future__ import annotations

import asyncio
import os

from edgelib.runner import enter_workspace
from gateway_api import native


def main() -> None:
    enter_workspace()
    native.activate()
    from gateway_api.config import Settings
    from gateway_api.serving import serve

    settings = Settings()
    worker = int(os.environ.get("GATEWAY_WORKER_INDEX", "0"))
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency (uvicorn[standard])
        asyncio.run(serve(settings, worker))
    else:
        uvloop.run(serve(settings, worker))


if __name__ == "__main__":
    main()
