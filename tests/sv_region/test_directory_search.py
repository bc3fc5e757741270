"""The directory's admin search: username prefix or user id, by region, keyset pages."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.sv_region.test_regions import PLAIN, admin, region_app, reserve

__all__ = ["region_app"]


async def _register(client: httpx.AsyncClient, name: str, region: str) -> str:
    entry = (await reserve(client, {"username": name, "region": region})).json()
    return str(entry["user_id"])


async def test_search_pages_by_username_prefix_and_region_without_repeats(
    region_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = region_app
    names = [f"zed{i:02d}" for i in range(7)]
    for i, name in enumerate(names):
        await _register(client, name, "east" if i % 2 else "west")
    await _register(client, "zebra", "east")
    await _register(client, "z_d", "east")  # '_' is not a wildcard

    seen: list[str] = []
    after = None
    for _ in range(10):
        path = "/api/v1/regions/directory?q=ZED&limit=3" + (f"&after={after}" if after else "")
        page = await admin(client, "GET", path)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 3
        seen += [item["username"] for item in body["items"]]
        after = body["next"]
        if after is None:
            break
    assert seen == names

    east = (await admin(client, "GET", "/api/v1/regions/directory?q=zed&region=east")).json()
    assert [i["username"] for i in east["items"]] == names[1::2]
    assert {i["region"] for i in east["items"]} == {"east"}
    literal = (await admin(client, "GET", "/api/v1/regions/directory?q=z_")).json()
    assert [i["username"] for i in literal["items"]] == ["z_d"]


async def test_search_by_user_id_and_one_entry(
    region_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = region_app
    user_id = await _register(client, "findme", "west")
    found = (await admin(client, "GET", f"/api/v1/regions/directory?q={user_id}")).json()
    assert [(i["username"], i["region"]) for i in found["items"]] == [("findme", "west")]
    assert found["next"] is None
    entry = await admin(client, "GET", f"/api/v1/regions/directory/{user_id}")
    assert entry.status_code == 200
    assert entry.json()["status"] == "pending"
    missing = await admin(client, "GET", "/api/v1/regions/directory/no-such-user")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_search_refuses_bad_input_and_callers_without_regions_read(
    region_app: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = region_app
    for query in ("limit=0", "limit=201", "region=BAD!", f"q={'x' * 65}"):
        resp = await admin(client, "GET", f"/api/v1/regions/directory?{query}")
        assert resp.status_code == 422, query
        assert resp.headers["content-type"] == "application/problem+json"
    denied = await admin(client, "GET", "/api/v1/regions/directory", who=PLAIN)
    assert denied.status_code == 403
