"""Brute-force protection: lockout per account and per client address, 429 with Retry-After."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from auth_jwt.sessions.exceptions import LoginLocked
from auth_jwt.sessions.lockout import LoginGuard
from edgelib.backends import MemoryBackend, RedisBackend
from tests.identity_harness import IdentityStack, identity_stack

PASSWORD = "correct horse 1"
LOCKOUT = {
    "lockout_account_failures": 3,
    "lockout_address_failures": 6,
    "lockout_base": 1.0,
    "lockout_max": 4.0,
}

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[IdentityStack]:
    async with identity_stack(tmp_path_factory.mktemp("lockout"), auth=LOCKOUT) as s:
        yield s


def fresh(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def address() -> str:
    return f"192.0.2.{uuid.uuid4().int % 250 + 1}-{uuid.uuid4().hex[:4]}"


async def test_repeated_wrong_passwords_lock_the_account_then_the_right_one_works(
    stack: IdentityStack,
) -> None:
    name = fresh()
    await stack.register(name, PASSWORD)
    where = address()
    statuses = [
        (await stack.login(name, "wrong guess 1", address=where)).status_code for _ in range(3)
    ]
    assert statuses == [401, 401, 429]
    locked = await stack.login(name, PASSWORD, address=where)
    assert locked.status_code == 429
    assert locked.headers["content-type"] == "application/problem+json"
    retry_after = int(locked.headers["retry-after"])
    assert 1 <= retry_after <= 1
    # The lock is the account's: another address is refused as well.
    assert (await stack.login(name, PASSWORD, address=address())).status_code == 429
    await asyncio.sleep(retry_after + 0.1)
    assert (await stack.login(name, PASSWORD, address=where)).status_code == 200


async def test_a_success_resets_the_failure_count(stack: IdentityStack) -> None:
    name = fresh()
    await stack.register(name, PASSWORD)
    where = address()
    for _ in range(2):
        assert (await stack.login(name, "wrong guess 1", address=where)).status_code == 401
    assert (await stack.login(name, PASSWORD, address=where)).status_code == 200
    for _ in range(2):
        assert (await stack.login(name, "wrong guess 1", address=where)).status_code == 401


async def test_one_address_guessing_many_accounts_is_locked_out(stack: IdentityStack) -> None:
    where = address()
    statuses = [
        (await stack.login(fresh("ghost"), PASSWORD, address=where)).status_code for _ in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    name = fresh()
    await stack.register(name, PASSWORD)
    refused = await stack.login(name, PASSWORD, address=where)
    assert refused.status_code == 429
    assert "retry-after" in refused.headers
    assert (await stack.login(name, PASSWORD, address=address())).status_code == 200


async def test_repeated_lockouts_double_up_to_the_maximum() -> None:
    guard = LoginGuard(
        MemoryBackend(), account_failures=1, address_failures=100, window=60, base=1, maximum=4
    )
    waits = []
    for _ in range(4):
        with pytest.raises(LoginLocked) as locked:
            await guard.failed("kim", None)
        waits.append(int(locked.value.headers["Retry-After"]))
        await guard.backend.delete("auth:login:lock:account:kim")
    assert waits == [1, 2, 4, 4]


@pytest.mark.integration
async def test_lockout_counters_live_in_redis(redis_url: str) -> None:
    backend = RedisBackend(redis_url)
    prefix = f"test:{uuid.uuid4().hex[:8]}"
    guard = LoginGuard(
        backend,
        account_failures=2,
        address_failures=50,
        window=60,
        base=2,
        maximum=8,
        prefix=prefix,
    )
    try:
        await guard.failed("lee", "192.0.2.1")
        with pytest.raises(LoginLocked):
            await guard.failed("lee", "192.0.2.1")
        # Another gateway-facing instance sharing Redis sees the same lock.
        twin = LoginGuard(
            RedisBackend(redis_url),
            account_failures=2,
            address_failures=50,
            window=60,
            base=2,
            maximum=8,
            prefix=prefix,
        )
        with pytest.raises(LoginLocked) as locked:
            await twin.check("LEE", "192.0.2.9")
        assert int(locked.value.headers["Retry-After"]) == 2
        await twin.backend.close()
    finally:
        await backend.close()


@pytest.mark.integration
async def test_login_lockout_on_postgresql_and_redis(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    async with identity_stack(tmp_path, pg_url=pg_url, redis_url=redis_url, auth=LOCKOUT) as stack:
        name = fresh()
        await stack.register(name, PASSWORD)
        where = address()
        for expected in (401, 401, 429):
            assert (await stack.login(name, "wrong guess 1", address=where)).status_code == expected
        locked = await stack.login(name, PASSWORD, address=where)
        assert locked.status_code == 429
        await asyncio.sleep(int(locked.headers["retry-after"]) + 0.1)
        assert (await stack.login(name, PASSWORD, address=where)).status_code == 200
