"""sv-region's user directory: reservations, confirmation, release, lookups."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from sv_region.config import Settings
from sv_region.main import create_app
from sv_region.models import Region
from sv_region.regions.service import choose_region
from tests.helpers import running
from tests.identity_harness import caller_of


def assign_region(username: str, names: list[str]) -> str:
    """The weighted default with every region at weight 1 (the seeded state)."""
    regions = [Region(name=n, status="active", weight=1) for n in names]
    return choose_region(username, regions, [])[0]


def signed(method: str, target: str, body: bytes) -> dict[str, str]:
    """Signed by the service that makes this call in the platform (its caller list)."""
    caller = ServiceSigner(caller_of(method, target), DEV_SERVICE_SECRET)
    return caller.sign(method, target, body, destination="sv-region")


@pytest.fixture
async def directory(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        var_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'region.db'}",
        regions=["east", "west", "north"],
        pending_ttl=600,
    )
    async with running(create_app(settings)) as client:
        yield client


async def call(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    headers = signed(method, path, content)
    if body is not None:
        headers["content-type"] = "application/json"
    return await client.request(method, path, content=content, headers=headers)


async def test_reservation_assigns_a_region_by_the_rule_when_none_is_asked(
    directory: httpx.AsyncClient,
) -> None:
    resp = await call(directory, "POST", "/internal/directory/reservations", {"username": "Ann"})
    assert resp.status_code == 201
    entry = resp.json()
    assert entry["username"] == "ann"
    assert entry["status"] == "pending"
    assert entry["region"] == assign_region("ann", ["east", "west", "north"])


async def test_username_is_unique_regardless_of_case_and_region(
    directory: httpx.AsyncClient,
) -> None:
    first = await call(
        directory, "POST", "/internal/directory/reservations", {"username": "bob", "region": "east"}
    )
    assert first.status_code == 201
    again = await call(
        directory, "POST", "/internal/directory/reservations", {"username": "BOB", "region": "west"}
    )
    assert again.status_code == 409
    assert again.json()["type"].endswith("/username-taken")


async def test_unknown_region_is_refused_with_422(directory: httpx.AsyncClient) -> None:
    resp = await call(
        directory, "POST", "/internal/directory/reservations", {"username": "cat", "region": "mars"}
    )
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"


async def test_only_confirmed_entries_are_found_by_id_and_by_username(
    directory: httpx.AsyncClient,
) -> None:
    entry = (
        await call(
            directory,
            "POST",
            "/internal/directory/reservations",
            {"username": "dan", "region": "west"},
        )
    ).json()
    user_id = entry["user_id"]
    assert (await call(directory, "GET", f"/internal/directory/users/{user_id}")).status_code == 404
    confirmed = await call(directory, "POST", f"/internal/directory/users/{user_id}/confirm")
    assert confirmed.json()["status"] == "active"
    by_id = await call(directory, "GET", f"/internal/directory/users/{user_id}")
    by_name = await call(directory, "GET", "/internal/directory/usernames/DAN")
    assert by_id.json()["region"] == by_name.json()["region"] == "west"


async def test_release_frees_a_pending_name_but_never_an_active_one(
    directory: httpx.AsyncClient,
) -> None:
    path = "/internal/directory/reservations"
    pending = (await call(directory, "POST", path, {"username": "eve"})).json()
    released = await call(directory, "DELETE", f"/internal/directory/users/{pending['user_id']}")
    assert released.status_code == 204
    active = (await call(directory, "POST", path, {"username": "eve"})).json()
    await call(directory, "POST", f"/internal/directory/users/{active['user_id']}/confirm")
    refused = await call(directory, "DELETE", f"/internal/directory/users/{active['user_id']}")
    assert refused.status_code == 409
    assert (await call(directory, "GET", "/internal/directory/usernames/eve")).status_code == 200


async def test_abandoned_pending_reservation_can_be_taken_over(tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'region.db'}",
        pending_ttl=0,
    )
    async with running(create_app(settings)) as client:
        path = "/internal/directory/reservations"
        first = (await call(client, "POST", path, {"username": "fay"})).json()
        second = await call(client, "POST", path, {"username": "fay"})
        assert second.status_code == 201
        assert second.json()["user_id"] != first["user_id"]


async def test_directory_refuses_unsigned_callers(directory: httpx.AsyncClient) -> None:
    resp = await directory.get("/internal/directory/usernames/anyone")
    assert resp.status_code == 401
    assert resp.headers["content-type"] == "application/problem+json"


def test_assignment_rule_is_stable_and_spreads_users() -> None:
    regions = ["west", "east"]
    picks = [assign_region(f"user{i}", regions) for i in range(200)]
    assert picks == [assign_region(f"user{i}", ["east", "west"]) for i in range(200)]
    assert 60 < picks.count("east") < 140
