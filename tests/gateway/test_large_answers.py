"""Answers of hundreds of KiB with a Content-Length pass through whole and at once.

The regression: an answer past the upstream connection's high-water mark (256 KiB) that
arrived complete before the relay began left the connection's reading paused when it
went back to its pool, so the next request on it waited for a head it never read, and
got 504 after the read timeout (about one request in four for 390 KiB answers).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import httpx
import pytest

from tests.gateway.conftest import GatewayUnderTest, worker_gateway


async def test_a_390_kib_answer_passes_through_every_time_with_and_without_keep_alive(
    gw: GatewayUnderTest,
) -> None:
    size = 390 * 1024 + 1
    slowest = 0.0
    timeout = aiohttp.ClientTimeout(total=5)
    for fresh in (False, True):
        connector = aiohttp.TCPConnector(force_close=fresh)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            for _ in range(30):
                started = time.monotonic()
                async with session.get(gw.url + "/api/v1/echo/sized?kb=390") as resp:
                    body = await resp.read()
                slowest = max(slowest, time.monotonic() - started)
                assert resp.status == 200
                assert len(body) == size
    assert slowest < 2.0


async def test_a_slow_reader_gets_the_whole_of_a_big_answer(gw: GatewayUnderTest) -> None:
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for _ in range(5):
            async with session.get(gw.url + "/api/v1/echo/sized?kb=2048") as resp:
                received = 0
                async for piece in resp.content.iter_chunked(16384):
                    received += len(piece)
                    await asyncio.sleep(0.001)
            assert received == 2048 * 1024 + 1


ROUTES = """
[defaults]
read_timeout = 5.0
total_timeout = 10.0

[[routes]]
prefix = "/api/v1/echo"
service = "echo"
access = "public"
"""


def test_big_answers_between_processes_pass_through_every_time(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The gateway and its upstream as processes of their own: the answer arrives in many
    reads at the pace of real sockets, and pooled upstream connections are reused."""
    size = 390 * 1024 + 1
    url_path = "/api/v1/echo/sized?kb=390"
    with worker_gateway(
        tmp_path_factory.mktemp("large-answers"),
        ROUTES,
        workers=1,
        upstream_app=("--factory", "tests.gateway.upstream:hostile_upstream"),
    ) as gw:
        slowest = 0.0
        failures: list[str] = []
        for keep_alive in (1, 0):
            limits = httpx.Limits(max_keepalive_connections=keep_alive)
            with httpx.Client(timeout=8, limits=limits) as client:
                for _ in range(25):
                    started = time.monotonic()
                    try:
                        resp = client.get(f"http://127.0.0.1:{gw.public}{url_path}")
                    except httpx.HTTPError as exc:
                        failures.append(type(exc).__name__)
                        continue
                    slowest = max(slowest, time.monotonic() - started)
                    if resp.status_code != 200 or len(resp.content) != size:
                        failures.append(f"{resp.status_code} {len(resp.content)}")
    assert not failures, failures
    assert slowest < 3.0
