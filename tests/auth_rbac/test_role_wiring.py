"""New accounts get the default role and the bootstrap admin the admin role, in auth-rbac."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.identity_harness import IdentityStack, identity_stack, signed


async def _assignments(stack: IdentityStack) -> set[tuple[str, str, str]]:
    rbac = stack.clients["auth-rbac"]
    resp = await rbac.get("/internal/policy", headers=signed("GET", "/internal/policy"))
    assert resp.status_code == 200, resp.text
    return {tuple(rule[1:4]) for rule in resp.json()["rules"] if rule[0] == "g"}  # type: ignore[misc]


async def _eventually(stack: IdentityStack, wanted: tuple[str, str, str]) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if wanted in await _assignments(stack):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{wanted} never assigned; have {await _assignments(stack)}")


async def test_registration_gives_the_default_role_in_either_region(tmp_path: Path) -> None:
    async with identity_stack(tmp_path) as stack:
        east = await stack.register("carol-roles", region="east")
        west = await stack.register("dave-roles", region="west")
        await _eventually(stack, (east["id"], "user", "default"))
        await _eventually(stack, (west["id"], "user", "default"))


async def test_bootstrap_admin_holds_the_admin_role(tmp_path: Path) -> None:
    async with identity_stack(tmp_path) as stack:
        entry = await stack.region.get(
            "/internal/directory/usernames/admin",
            headers=signed("GET", "/internal/directory/usernames/admin"),
        )
        assert entry.status_code == 200, entry.text
        await _eventually(stack, (entry.json()["user_id"], "admin", "default"))
