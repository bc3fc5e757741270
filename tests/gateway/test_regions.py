"""Region resolution: sv-region is the truth, cached, invalidated by directory events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgelib.backends import MemoryBackend
from edgelib.identity import Identity
from edgelib.signing import ServiceSigner, SignatureError
from gateway_api.topology import InstanceSpec
from gateway_api.upstreams.pools import Instance, Pool
from gateway_api.upstreams.regions import DIRECTORY_CHANNEL, RegionResolver
from tests.gateway.conftest import serve
from tests.worker import free_port

SECRET = "regions-test-secret"
ALICE = Identity("u-alice", "alice", "east", "s1", "web")  # the token says east


class Directory:
    def __init__(self) -> None:
        self.regions = {"u-alice": "west"}
        self.calls = 0
        self.verifier = ServiceSigner("sv-region", SECRET)

    def app(self) -> Starlette:
        async def lookup(request: Request) -> Response:
            self.calls += 1
            try:
                self.verifier.verify("GET", request.url.path, request.headers, b"")
            except SignatureError:
                return JSONResponse({"detail": "unsigned"}, status_code=401)
            user_id = request.path_params["user_id"]
            if user_id not in self.regions:
                return JSONResponse({"detail": "unknown"}, status_code=404)
            return JSONResponse({"user_id": user_id, "region": self.regions[user_id]})

        return Starlette(routes=[Route("/internal/directory/users/{user_id}", lookup)])


@pytest.fixture
async def directory() -> AsyncIterator[tuple[Directory, Pool]]:
    d = Directory()
    port = free_port()
    server, task = await serve(d.app(), port)
    pool = Pool(
        "sv-region",
        None,
        [Instance(InstanceSpec("sv-region", None, f"http://127.0.0.1:{port}", 1, port))],
    )
    yield d, pool
    server.should_exit = True
    await task


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_directory_wins_over_token_claim_and_is_cached(
    directory: tuple[Directory, Pool], session: aiohttp.ClientSession
) -> None:
    d, pool = directory
    resolver = RegionResolver(
        pool=pool, session=session, signer=ServiceSigner("gateway-api", SECRET), backend=None
    )
    assert await resolver.region_of(ALICE) == "west"
    assert await resolver.region_of(ALICE) == "west"
    assert d.calls == 1
    assert resolver.hits == 1


async def test_concurrent_misses_make_one_lookup(
    directory: tuple[Directory, Pool], session: aiohttp.ClientSession
) -> None:
    d, pool = directory
    resolver = RegionResolver(
        pool=pool, session=session, signer=ServiceSigner("gateway-api", SECRET), backend=None
    )
    results = await asyncio.gather(*(resolver.region_of(ALICE) for _ in range(20)))
    assert set(results) == {"west"}
    assert d.calls == 1


async def test_directory_event_invalidates_the_cached_region(
    directory: tuple[Directory, Pool], session: aiohttp.ClientSession
) -> None:
    d, pool = directory
    backend = MemoryBackend()
    resolver = RegionResolver(
        pool=pool, session=session, signer=ServiceSigner("gateway-api", SECRET), backend=backend
    )
    await resolver.start()
    try:
        assert await resolver.region_of(ALICE) == "west"
        d.regions["u-alice"] = "east"  # the user moves
        await asyncio.sleep(0.05)
        await backend.publish(DIRECTORY_CHANNEL, b"u-alice")
        await asyncio.sleep(0.05)
        assert await resolver.region_of(ALICE) == "east"
        assert d.calls == 2
    finally:
        await resolver.stop()
        await backend.close()


async def test_unreachable_directory_falls_back_to_token_claim_briefly(
    session: aiohttp.ClientSession,
) -> None:
    port = free_port()  # nothing listens there
    pool = Pool(
        "sv-region",
        None,
        [Instance(InstanceSpec("sv-region", None, f"http://127.0.0.1:{port}", 1, port))],
    )
    resolver = RegionResolver(
        pool=pool,
        session=session,
        signer=ServiceSigner("gateway-api", SECRET),
        backend=None,
        fallback_ttl=0.05,
    )
    assert await resolver.region_of(ALICE) == "east"
    await asyncio.sleep(0.1)
    assert await resolver.region_of(ALICE) == "east"
    assert resolver.misses == 2


async def test_wrong_signature_key_means_fallback_not_trust(
    directory: tuple[Directory, Pool], session: aiohttp.ClientSession
) -> None:
    d, pool = directory
    resolver = RegionResolver(
        pool=pool, session=session, signer=ServiceSigner("gateway-api", "wrong"), backend=None
    )
    assert await resolver.region_of(ALICE) == "east"
    assert d.calls == 1
