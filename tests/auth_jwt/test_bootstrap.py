"""The bootstrap admin: created on start, password from the environment or var/admin-password."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from fastapi import FastAPI

from auth_jwt.bootstrap_records import BootstrapRecords
from auth_jwt.config import Settings
from auth_jwt.main import create_app as create_auth_app
from tests.identity_harness import ADMIN_PASSWORD, IdentityStack, identity_stack, signed


async def test_local_profile_generates_the_admin_password_into_a_0600_file(
    tmp_path: Path,
) -> None:
    async with identity_stack(tmp_path, auth={"admin_password": None}) as stack:
        ready = (await stack.auth.get("/readyz")).json()
        assert ready["checks"]["admin"] == "ok"
        path = tmp_path / "admin-password"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        password = path.read_text().strip()
        assert len(password) >= 20
        assert (await stack.login("admin", password)).status_code == 200


async def test_admin_password_from_the_environment_setting_writes_no_file(
    tmp_path: Path,
) -> None:
    async with identity_stack(tmp_path) as stack:
        assert (await stack.login("admin", ADMIN_PASSWORD)).status_code == 200
        assert not (tmp_path / "admin-password").exists()
        created = await stack.users("east").post(
            "/api/v1/users", json={"username": "ADMIN", "password": "whatever 123"}
        )
        assert created.status_code == 409


async def _admin_assignments(stack: IdentityStack, user_id: str) -> list[list[str]]:
    """The user's assignments of the ``admin`` role in auth-rbac's policy."""
    path = "/internal/policy"
    resp = await stack.clients["auth-rbac"].get(path, headers=signed("GET", path))
    assert resp.status_code == 200, resp.text
    return [r for r in resp.json()["rules"] if r[:3] == ["g", user_id, "admin"]]


async def _start_auth(stack: IdentityStack, settings: Settings) -> AsyncIterator[FastAPI]:
    """Another auth-jwt process, as a restart would start it (same database, same peers)."""
    app = create_auth_app(settings, transport=stack.router)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth-jwt-2") as client:
            deadline = asyncio.get_running_loop().time() + 10
            while (await client.get("/readyz")).status_code != 200:
                assert asyncio.get_running_loop().time() < deadline, "not ready"
                await asyncio.sleep(0.02)
        yield app


async def test_the_bootstrap_remembers_its_admin_by_id_across_restarts(tmp_path: Path) -> None:
    async with identity_stack(tmp_path) as stack:
        auth = stack.apps["auth-jwt"]
        record = await BootstrapRecords(auth.state.database).get("admin")
        assert record is not None
        assert record.confirmed_at is not None
        entry = await auth.state.users.directory.lookup("admin")
        assert entry.user_id == record.user_id
        assert await _admin_assignments(stack, record.user_id) == [
            ["g", record.user_id, "admin", "default"]
        ]
        async for restarted in _start_auth(stack, auth.state.settings):
            again = await BootstrapRecords(restarted.state.database).get("admin")
            assert again is not None
            assert again.user_id == record.user_id
            assert restarted.state.bootstrap.skipped_reason is None


async def test_an_account_holding_the_admin_name_is_never_granted_the_role(
    tmp_path: Path,
) -> None:
    async with identity_stack(tmp_path) as stack:
        # "mallory" is not a reserved name of this sv-user, so anyone may take it; then
        # an auth-jwt configured with it as the admin name (and a fresh database of its
        # own, so it remembers no admin) starts.
        mallory = await stack.register("mallory", "correct horse 1")
        settings = stack.apps["auth-jwt"].state.settings.model_copy(
            update={
                "admin_username": "mallory",
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'auth-jwt-2.db'}",
            }
        )
        async for restarted in _start_auth(stack, settings):
            bootstrap = restarted.state.bootstrap
            assert bootstrap.skipped_reason == "the name 'mallory' is held by another account"
            record = await BootstrapRecords(restarted.state.database).get("admin")
            assert record is not None
            assert record.user_id != mallory["id"]
            assert record.confirmed_at is None
        assert await _admin_assignments(stack, mallory["id"]) == []
