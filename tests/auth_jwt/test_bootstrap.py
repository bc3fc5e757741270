"""The bootstrap admin: created on start, password from the environment or var/admin-password."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.identity_harness import ADMIN_PASSWORD, identity_stack


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
