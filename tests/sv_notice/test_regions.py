"""An admin's send for a user of another region is handed to that region's sv-notice."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from fastapi import FastAPI, HTTPException

from edgelib.identity import Identity
from sv_notice.main import create_app
from tests.helpers import grant
from tests.sv_notice.conftest import (
    ADMIN,
    gateway_headers,
    serving,
    settings_for,
)
from tests.worker import free_port

WEST_USER = Identity(str(uuid.uuid4()), "wendy", "west", "s-w", "web")
EAST_USER = Identity(str(uuid.uuid4()), "erin", "east", "s-e", "web")


def directory_app() -> FastAPI:
    """sv-region's directory lookups, as sv-notice calls them."""
    app = FastAPI()
    users = {u.user_id: u for u in (WEST_USER, EAST_USER)}

    def entry(user: Identity) -> dict[str, str]:
        return {
            "user_id": user.user_id,
            "username": user.username,
            "region": user.region,
            "status": "active",
            "created_at": "2026-11-21T00:00:00Z",
        }

    @app.get("/internal/directory/users/{user_id}")
    async def by_id(user_id: str) -> dict[str, str]:
        if user_id not in users:
            raise HTTPException(404)
        return entry(users[user_id])

    @app.get("/internal/directory/usernames/{name}")
    async def by_name(name: str) -> dict[str, str]:
        for user in users.values():
            if user.username == name:
                return entry(user)
        raise HTTPException(404)

    return app


async def _post(http: httpx.AsyncClient, base: str, body: dict) -> httpx.Response:
    path = "/api/v1/notices/admin/send"
    return await http.post(base + path, json=body, headers=gateway_headers("POST", path, ADMIN))


async def _inbox(http: httpx.AsyncClient, base: str, user: Identity) -> list[str]:
    path = "/api/v1/notices"
    resp = await http.get(base + path, headers=gateway_headers("GET", path, user))
    return [n["title"] for n in resp.json()["items"]]


async def test_send_for_a_user_of_another_region_lands_in_their_region(tmp_path: Path) -> None:
    west_port = free_port()
    west_url = f"http://127.0.0.1:{west_port}"
    west = create_app(settings_for("sqlite-memory", tmp_path / "west", region="west"))
    async with serving(directory_app()) as region_url:
        east = create_app(
            settings_for(
                "sqlite-memory",
                tmp_path / "east",
                sv_region_url=region_url,
                peers={"west": west_url},
                peer_timeout=2.0,
            )
        )
        grant(east, ADMIN.user_id, "notices:admin")
        async with serving(east) as east_url, httpx.AsyncClient(timeout=10) as http:
            body = {"category": "general", "variables": {"title": "Hi", "body": "there"}}
            # West is down: the send cannot be placed, and says so.
            down = await _post(http, east_url, body | {"username": "wendy"})
            assert down.status_code == 503
            assert down.json()["type"].endswith("/peer-unavailable")
            async with serving(west, west_port):
                by_name = await _post(http, east_url, body | {"username": "wendy"})
                assert by_name.status_code == 202, by_name.text
                assert by_name.json()["user_id"] == WEST_USER.user_id
                by_id = await _post(
                    http, east_url, body | {"user_id": WEST_USER.user_id, "dedup_key": "w-1"}
                )
                again = await _post(
                    http, east_url, body | {"user_id": WEST_USER.user_id, "dedup_key": "w-1"}
                )
                assert (by_id.status_code, again.status_code) == (202, 200)
                local = await _post(http, east_url, body | {"username": "erin"})
                assert local.status_code == 202
                assert await _inbox(http, west_url, WEST_USER) == ["Hi", "Hi"]
                assert await _inbox(http, east_url, WEST_USER) == []
                assert await _inbox(http, east_url, EAST_USER) == ["Hi"]
                unknown = await _post(http, east_url, body | {"username": "nobody"})
                assert unknown.status_code == 422
                assert unknown.json()["type"].endswith("/unknown-user")
                both = await _post(
                    http, east_url, body | {"username": "erin", "user_id": EAST_USER.user_id}
                )
                assert both.status_code == 422
