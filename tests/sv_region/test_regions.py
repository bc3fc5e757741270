"""The regions admin API, assignment rules, and change events."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from edgelib.identity import Identity
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from sv_region.config import Settings
from sv_region.main import create_app
from sv_region.regions.events import DIRECTORY_CHANNEL, REGIONS_CHANNEL
from sv_region.seed import seed_regions
from tests.helpers import grant, running

ADMIN = Identity("u-admin", "admin", "east", "s-1", "web")
GATEWAY = ServiceSigner("gateway-api", DEV_SERVICE_SECRET).to("sv-region")
SV_USER = ServiceSigner("sv-user", DEV_SERVICE_SECRET).to("sv-region")
PLAIN = Identity("u-plain", "plain", "east", "s-2", "web")


@pytest.fixture
async def region_app(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = Settings(
        var_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'region.db'}",
        regions=["east", "west"],
    )
    app = grant(create_app(settings), ADMIN.user_id, "regions:read", "regions:write")
    async with running(app) as client:
        yield app, client


async def admin(
    client: httpx.AsyncClient, method: str, path: str, body: Any = None, who: Identity = ADMIN
) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    headers = GATEWAY.sign(method, path, None, identity=who.encode())
    if body is not None:
        headers["content-type"] = "application/json"
    return await client.request(method, path, content=content, headers=headers)


async def reserve(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    content = json.dumps(body).encode()
    headers = SV_USER.sign("POST", "/internal/directory/reservations", content)
    headers["content-type"] = "application/json"
    return await client.post("/internal/directory/reservations", content=content, headers=headers)


async def test_admin_api_needs_a_gateway_identity(
    region_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = region_app
    resp = await client.get("/api/v1/regions")
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"


async def test_regions_are_listed_created_replaced_and_deleted(
    region_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = region_app
    listed = (await admin(client, "GET", "/api/v1/regions")).json()
    assert [r["name"] for r in listed] == ["east", "west"]
    body = {"endpoints": {"sv-user": ["http://10.1.0.5:7110/"]}, "weight": 2}
    created = await admin(client, "PUT", "/api/v1/regions/north", body)
    assert created.status_code == 201
    assert created.json()["endpoints"] == {"sv-user": ["http://10.1.0.5:7110"]}
    replaced = await admin(
        client,
        "PUT",
        "/api/v1/regions/north",
        {"status": "draining", "discovery": "k8s:edge-north"},
    )
    assert replaced.status_code == 200
    assert replaced.json()["status"] == "draining"
    assert replaced.json()["discovery"] == "k8s:edge-north"
    assert (await admin(client, "GET", "/api/v1/regions/north")).json()["weight"] == 1
    assert (await admin(client, "DELETE", "/api/v1/regions/north")).status_code == 204
    missing = await admin(client, "GET", "/api/v1/regions/north")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/region-not-found")


@pytest.mark.parametrize(
    "body",
    [
        {"status": "sleeping"},
        {"weight": -1},
        {"discovery": "dns:whatever"},
        {"endpoints": {"sv-user": ["not a url"]}},
        {"unknown": 1},
    ],
)
async def test_bad_region_bodies_are_422(
    region_app: tuple[FastAPI, httpx.AsyncClient], body: dict[str, Any]
) -> None:
    _, client = region_app
    resp = await admin(client, "PUT", "/api/v1/regions/south", body)
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"


async def test_region_with_residents_cannot_be_deleted(
    region_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = region_app
    assert (await reserve(client, {"username": "resident", "region": "west"})).status_code == 201
    resp = await admin(client, "DELETE", "/api/v1/regions/west")
    assert resp.status_code == 409
    assert resp.json()["type"].endswith("/region-in-use")


async def test_phone_and_network_rules_choose_the_region(
    region_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = region_app
    r1 = await admin(
        client,
        "POST",
        "/api/v1/regions/rules",
        {"kind": "phone_prefix", "match": "+44", "region": "west"},
    )
    assert r1.status_code == 201
    r2 = await admin(
        client,
        "POST",
        "/api/v1/regions/rules",
        {"kind": "network", "match": "10.20.0.0/16", "region": "east"},
    )
    assert r2.json()["match"] == "10.20.0.0/16"
    uk = await reserve(client, {"username": "brit", "phone": "+44 20 7946 0000"})
    assert uk.json()["region"] == "west"
    office = await reserve(client, {"username": "office", "client_address": "10.20.3.4"})
    assert office.json()["region"] == "east"
    preview = await admin(
        client, "GET", "/api/v1/regions/assignment?username=x&phone=%2B447700900000"
    )
    assert preview.json() == {"region": "west", "rule": "phone_prefix +44"}
    rules = (await admin(client, "GET", "/api/v1/regions/rules")).json()
    assert {r["kind"] for r in rules} == {"phone_prefix", "network"}
    assert (
        await admin(client, "DELETE", f"/api/v1/regions/rules/{r1.json()['id']}")
    ).status_code == 204
    assert (
        await admin(client, "DELETE", f"/api/v1/regions/rules/{r1.json()['id']}")
    ).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "phone_prefix", "match": "44", "region": "west"},
        {"kind": "network", "match": "10.0.0.0/99", "region": "west"},
        {"kind": "network", "match": "10.0.0.0/8", "region": "nowhere"},
        {"kind": "planet", "match": "mars", "region": "west"},
    ],
)
async def test_bad_rules_are_refused(
    region_app: tuple[FastAPI, httpx.AsyncClient], body: dict[str, Any]
) -> None:
    _, client = region_app
    resp = await admin(client, "POST", "/api/v1/regions/rules", body)
    assert resp.status_code in (404, 422)
    assert resp.headers["content-type"] == "application/problem+json"


async def test_duplicate_rule_is_409(region_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = region_app
    body = {"kind": "phone_prefix", "match": "+1", "region": "east"}
    assert (await admin(client, "POST", "/api/v1/regions/rules", body)).status_code == 201
    assert (await admin(client, "POST", "/api/v1/regions/rules", body)).status_code == 409


async def test_weighted_default_and_draining_regions(
    region_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = region_app
    await admin(client, "PUT", "/api/v1/regions/west", {"weight": 3})
    picks = Counter()
    for i in range(400):
        preview = await admin(client, "GET", f"/api/v1/regions/assignment?username=user{i}")
        picks[preview.json()["region"]] += 1
    assert 260 < picks["west"] < 340
    await admin(client, "PUT", "/api/v1/regions/west", {"status": "draining", "weight": 3})
    assert (await reserve(client, {"username": "late"})).json()["region"] == "east"
    refused = await reserve(client, {"username": "late2", "region": "west"})
    assert refused.status_code in (404, 409, 422)


async def test_moving_a_user_publishes_a_directory_event(
    region_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = region_app
    entry = (await reserve(client, {"username": "mover", "region": "east"})).json()
    confirm = f"/internal/directory/users/{entry['user_id']}/confirm"
    await client.post(confirm, headers=SV_USER.sign("POST", confirm, b""))
    directory_sub = await app.state.backend.subscribe(DIRECTORY_CHANNEL)
    regions_sub = await app.state.backend.subscribe(REGIONS_CHANNEL)
    moved = await admin(
        client, "PUT", f"/api/v1/regions/users/{entry['user_id']}/region", {"region": "west"}
    )
    assert moved.status_code == 200
    assert moved.json()["region"] == "west"
    channel, message = await asyncio.wait_for(directory_sub.__aiter__().__anext__(), 2)
    assert (channel, message) == (DIRECTORY_CHANNEL, entry["user_id"].encode())
    await admin(client, "PUT", "/api/v1/regions/west", {"weight": 2})
    channel, message = await asyncio.wait_for(regions_sub.__aiter__().__anext__(), 2)
    assert message == b"west"
    await directory_sub.close()
    await regions_sub.close()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/regions", None),
        ("PUT", "/api/v1/regions/north", {"status": "active", "weight": 1}),
        (
            "POST",
            "/api/v1/regions/rules",
            {"kind": "phone_prefix", "match": "+1", "region": "west"},
        ),
        ("DELETE", "/api/v1/regions/west", None),
    ],
)
async def test_a_signed_identity_without_the_permission_is_403_here_too(
    region_app: tuple[FastAPI, httpx.AsyncClient], method: str, path: str, body: Any
) -> None:
    # The gateway would route these (a wrong route table, say); sv-region checks itself.
    _app, client = region_app
    resp = await admin(client, method, path, body, who=PLAIN)
    assert resp.status_code == 403
    assert resp.headers["content-type"] == "application/problem+json"
    assert "regions:" in resp.json()["detail"]
    names = [r["name"] for r in (await admin(client, "GET", "/api/v1/regions")).json()]
    assert names == ["east", "west"]


async def test_the_gateway_reads_every_regions_discovery_source_over_the_internal_api(
    region_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = region_app
    created = await admin(client, "PUT", "/api/v1/regions/south", {"discovery": "etcd:/south"})
    assert created.status_code == 201
    headers = GATEWAY.sign("GET", "/internal/regions", b"")
    resp = await client.get("/internal/regions", headers=headers)
    assert resp.status_code == 200, resp.text
    listed = resp.json()
    assert {r["name"]: r["discovery"] for r in listed} == {
        "east": "static",
        "south": "etcd:/south",
        "west": "static",
    }
    # Another service may not; nor may an unsigned caller.
    other = SV_USER.sign("GET", "/internal/regions", b"")
    assert (await client.get("/internal/regions", headers=other)).status_code == 403
    assert (await client.get("/internal/regions")).status_code == 401


async def test_seeded_regions_follow_the_stacks_discovery_mode_until_edited(
    region_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = region_app
    edited = await admin(client, "PUT", "/api/v1/regions/west", {"discovery": "k8s:edge-west"})
    assert edited.status_code == 200
    # The stack now runs with EDGE_DISCOVERY=etcd (what create_app passes on a restart).
    await seed_regions(app.state.database, ["east", "west", "north"], "etcd:/edge/services")
    listed = (await admin(client, "GET", "/api/v1/regions")).json()
    assert {r["name"]: r["discovery"] for r in listed} == {
        "east": "etcd:/edge/services",  # seeded, never edited: follows the stack
        "north": "etcd:/edge/services",  # created by the seed
        "west": "k8s:edge-west",  # edited through the API: left alone
    }
