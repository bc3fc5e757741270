"""Request limits of login and refresh: per client address and per account, 429 problem+json
with Retry-After, counted on the shared backend; the client address is believed only
from a trusted proxy."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from auth_jwt.sessions.repository import SessionRepository
from auth_jwt.sessions.tokens import refresh_token_hash
from edgelib.backends import Backend
from edgelib.ratelimit import RateLimited, RequestLimiter, WindowLimit
from tests.identity_harness import IdentityStack, identity_stack

PASSWORD = "correct horse 1"


def fresh() -> str:
    return f"u{uuid.uuid4().hex[:10]}"


def address() -> str:
    return f"198.51.100.{uuid.uuid4().int % 250 + 1}"


def assert_rate_limited(response_status: int, headers: dict[str, str], body: dict[str, str]) -> int:
    assert response_status == 429
    assert headers["content-type"] == "application/problem+json"
    assert body["type"].endswith("/rate-limited")
    retry_after = int(headers["retry-after"])
    assert retry_after >= 1
    return retry_after


async def refresh(
    stack: IdentityStack, token: str, where: str
) -> tuple[int, dict[str, str], dict[str, Any]]:
    resp = await stack.auth.post(
        "/api/v1/auth/refresh", json={"refresh_token": token}, headers={"x-forwarded-for": where}
    )
    return resp.status_code, dict(resp.headers), resp.json()


async def test_logins_per_address_are_limited_with_retry_after(tmp_path: Path) -> None:
    limits = {"login_address_limit": 4, "login_address_window": 30.0}
    async with identity_stack(tmp_path, auth=limits) as stack:
        name = fresh()
        await stack.register(name, PASSWORD)
        where = address()
        for _ in range(4):
            assert (await stack.login(name, PASSWORD, address=where)).status_code == 200
        refused = await stack.login(name, PASSWORD, address=where)
        wait = assert_rate_limited(refused.status_code, dict(refused.headers), refused.json())
        assert wait <= 30
        # Another address is counted apart.
        assert (await stack.login(name, PASSWORD, address=address())).status_code == 200


async def test_refreshes_are_limited_per_account_and_per_address(tmp_path: Path) -> None:
    limits = {
        "refresh_account_limit": 2,
        "refresh_account_window": 30.0,
        "refresh_address_limit": 3,
        "refresh_address_window": 30.0,
    }
    async with identity_stack(tmp_path, auth=limits) as stack:
        name = fresh()
        await stack.register(name, PASSWORD)
        token = (await stack.login(name, PASSWORD)).json()["refresh_token"]
        for _ in range(2):
            status, _, body = await refresh(stack, token, address())
            assert status == 200, body
            token = body["refresh_token"]
        # The third refresh of this account within the window, from yet another address.
        status, headers, body = await refresh(stack, token, address())
        assert assert_rate_limited(status, headers, body) <= 30
        # The refused refresh did not use the token up.
        database = stack.apps["auth-jwt"].state.database
        async with database.sessions() as session:
            row = await SessionRepository(session).refresh_token(refresh_token_hash(token))
        assert row is not None
        assert row.used_at is None
        # Per address: unknown tokens still count, so guessing from one address is bounded.
        where = address()
        for _ in range(3):
            assert (await refresh(stack, "x" * 43, where))[0] == 401
        status, headers, body = await refresh(stack, "x" * 43, where)
        assert_rate_limited(status, headers, body)


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    # The harness's callers come from 10.0.0.2; trust only another range.
    limits = {"trusted_proxies": "192.0.2.0/24", "login_address_limit": 3}
    async with identity_stack(tmp_path, auth=limits) as stack:
        name = fresh()
        await stack.register(name, PASSWORD)
        # A caller inventing a new X-Forwarded-For each time is still one address.
        statuses = [
            (await stack.login(name, PASSWORD, address=address())).status_code for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]


async def test_limits_are_shared_by_every_instance_on_the_backend(backend: Backend) -> None:
    rule = WindowLimit(f"test-{uuid.uuid4().hex[:8]}", 2, 5.0)
    one, two = RequestLimiter(backend, prefix="t"), RequestLimiter(backend, prefix="t")
    await one.hit(rule, "192.0.2.1", "tries")
    await two.hit(rule, "192.0.2.1", "tries")
    with pytest.raises(RateLimited) as refused:
        await one.hit(rule, "192.0.2.1", "tries")
    assert 1 <= refused.value.retry_after <= 5
    await two.hit(rule, "192.0.2.2", "tries")
    # The window does not slide: it resets when its first hit is ``window`` old.
    short = WindowLimit(f"test-{uuid.uuid4().hex[:8]}", 1, 1.0)
    await one.hit(short, "192.0.2.1", "tries")
    with pytest.raises(RateLimited):
        await two.hit(short, "192.0.2.1", "tries")
    await asyncio.sleep(1.1)
    await two.hit(short, "192.0.2.1", "tries")
    # A rule with limit 0 is off.
    off = WindowLimit(rule.name, 0, 5.0)
    for _ in range(5):
        await one.hit(off, "192.0.2.1", "tries")
