"""``make up`` says how far it is: each process as it becomes ready, with a live count."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from edgectl.processes import ProcessSpec
from edgectl.supervisor import ReadyCount, wait_ready
from tests.worker import free_port


async def test_each_process_is_reported_as_it_becomes_ready_and_the_late_one_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ready = {"a": True, "b": False}

    async def readyz(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return web.Response(status=200 if ready[name] else 503)

    app = web.Application()
    app.router.add_get("/{name}/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    specs = [
        ProcessSpec(name=n, service=n, region=None, port=port, argv=[],
                    ready_url=f"http://127.0.0.1:{port}/{n}/readyz")
        for n in ("a", "b")
    ]  # fmt: skip
    try:
        count = ReadyCount(len(specs))

        async def b_later() -> None:
            await asyncio.sleep(0.6)
            ready["b"] = True

        later = asyncio.create_task(b_later())
        assert await wait_ready(specs, 10, count) == []
        await later
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[1] for line in lines] == ["a", "b"]  # in the order they came up
        assert "(1/2," in lines[0]
        assert "(2/2," in lines[1]
        ready["b"] = False
        assert await wait_ready(specs[1:], 0.5) == ["b"]  # not ready in time: named
    finally:
        await runner.cleanup()
