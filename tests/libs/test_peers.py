"""Peer clients: one error tree, and the one sv-region directory client.

The peer is a tiny app built inline, reached through ``httpx.ASGITransport``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Response

from edgelib.client import ServiceClient
from edgelib.peers import (
    DirectoryClient,
    DirectoryEntry,
    PeerProblem,
    PeerUnavailable,
    RegionalPeers,
    UnknownUser,
)
from edgelib.problems import PROBLEM_BASE
from edgelib.signing import ServiceSigner

SECRET = "peers-test-secret-0123456789abcdef"


def _directory_app(calls: list[str]) -> FastAPI:
    app = FastAPI()
    users = {
        "ada": {"user_id": "u-1", "username": "ada", "region": "east", "status": "active"},
        "bob": {"user_id": "u-2", "username": "bob", "region": "west", "status": "pending"},
    }

    @app.get("/internal/directory/usernames/{name}")
    async def by_name(name: str) -> Response:
        calls.append(name)
        if name == "crash":
            return Response(status_code=500)
        if name == "teapot":
            return Response(
                b'{"type": "' + PROBLEM_BASE.encode() + b'too-odd", "title": "Odd", '
                b'"detail": "that name is odd"}',
                status_code=418,
                media_type="application/problem+json",
            )
        if name not in users:
            return Response(status_code=404)
        return Response(json.dumps(users[name]), media_type="application/json")

    @app.get("/internal/directory/users/{user_id}")
    async def by_id(user_id: str) -> dict[str, str]:
        return {"user_id": user_id, "username": "ada", "region": "east"}

    @app.post("/internal/directory/reservations", status_code=201)
    async def reserve(body: dict[str, str | None]) -> dict[str, str]:
        return {"user_id": "u-9", "username": str(body["username"]), "region": "east"}

    return app


def _client(app: FastAPI | None, service: str = "sv-region") -> ServiceClient:
    signer = ServiceSigner("sv-money", SECRET)
    transport: httpx.AsyncBaseTransport
    if app is None:

        def refuse(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("refused", request=request)

        transport = httpx.MockTransport(refuse)
    else:
        transport = httpx.ASGITransport(app=app)
    return ServiceClient(
        "http://peer", signer=signer.to(service), transport=transport, retries=0, backoff=0
    )


@pytest.fixture
async def directory() -> AsyncIterator[tuple[DirectoryClient, list[str]]]:
    calls: list[str] = []
    client = DirectoryClient(_client(_directory_app(calls)), ttl=60)
    yield client, calls
    await client.aclose()


async def test_directory_finds_an_active_user_and_caches_the_answer(
    directory: tuple[DirectoryClient, list[str]],
) -> None:
    client, calls = directory
    assert await client.lookup(" Ada ") == DirectoryEntry("u-1", "ada", "east")
    assert await client.lookup("ada") == DirectoryEntry("u-1", "ada", "east")
    assert calls == ["ada"]
    assert (await client.lookup_id("u-1")).region == "east"


async def test_directory_says_unknown_user_for_a_missing_or_pending_name(
    directory: tuple[DirectoryClient, list[str]],
) -> None:
    client, _ = directory
    with pytest.raises(UnknownUser):
        await client.lookup("nobody")
    with pytest.raises(UnknownUser):
        await client.lookup("bob")


async def test_a_5xx_is_unavailable_and_a_4xx_is_relayed_as_the_peer_phrased_it(
    directory: tuple[DirectoryClient, list[str]],
) -> None:
    client, _ = directory
    with pytest.raises(PeerUnavailable, match="answered 500"):
        await client.lookup("crash")
    with pytest.raises(PeerProblem) as refused:
        await client.lookup("teapot")
    assert (refused.value.status_code, refused.value.type_slug) == (418, "too-odd")
    assert (refused.value.title, refused.value.detail) == ("Odd", "that name is odd")


async def test_an_unreachable_peer_is_unavailable_and_never_leaks_the_transport_error() -> None:
    client = DirectoryClient(_client(None))
    with pytest.raises(PeerUnavailable) as down:
        await client.lookup("ada")
    assert down.value.status_code == 503
    assert "sv-region" in down.value.detail
    await client.aclose()


async def test_reservations_are_posted_and_typed(
    directory: tuple[DirectoryClient, list[str]],
) -> None:
    client, _ = directory
    held = await client.reserve("carol", None, phone="+1555")
    assert (held.user_id, held.username, held.region) == ("u-9", "carol", "east")


async def test_regional_peers_name_the_region_in_their_errors() -> None:
    peers = RegionalPeers({"west": _client(None, "sv-money")}, "sv-money")
    assert "west" in peers
    assert peers.regions == ["west"]
    with pytest.raises(PeerUnavailable, match="no sv-money is configured for region 'north'"):
        await peers.call("north", "GET", "/x")
    with pytest.raises(PeerUnavailable, match="sv-money of region 'west' is not reachable"):
        await peers.call("west", "GET", "/x")
    await peers.aclose()
