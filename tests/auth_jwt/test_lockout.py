"""Brute-force protection: waits per account and address, 429 with Retry-After, no lockout
of a user by failures from elsewhere."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from auth_jwt.sessions.exceptions import LoginLocked
from auth_jwt.sessions.lockout import LockoutPolicy, LoginGuard
from edgelib.backends import MemoryBackend, RedisBackend
from tests.identity_harness import IdentityStack, identity_stack

PASSWORD = "correct horse 1"
LOCKOUT = {
    "lockout_failures": 3,
    "lockout_base": 1.0,
    "lockout_max": 4.0,
    "lockout_address_failures": 12,
    "lockout_account_failures": 8,
    "lockout_account_wait": 2.0,
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


async def test_failures_of_one_account_from_one_address_start_growing_waits(
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
    assert locked.json()["type"].endswith("/login-locked")
    assert int(locked.headers["retry-after"]) == 1
    await asyncio.sleep(1.1)
    # The next failure of this pair waits twice as long.
    doubled = await stack.login(name, "wrong guess 1", address=where)
    assert doubled.status_code == 429
    assert int(doubled.headers["retry-after"]) == 2
    await asyncio.sleep(2.1)
    assert (await stack.login(name, PASSWORD, address=where)).status_code == 200
    # The success reset the count: failures start from the beginning again.
    assert (await stack.login(name, "wrong guess 1", address=where)).status_code == 401


async def test_an_attacker_elsewhere_cannot_lock_the_user_out(stack: IdentityStack) -> None:
    name = fresh()
    await stack.register(name, PASSWORD)
    attacker = address()
    statuses = [
        (await stack.login(name, "wrong guess 1", address=attacker)).status_code for _ in range(6)
    ]
    assert statuses[:2] == [401, 401]
    assert set(statuses[2:]) == {429}
    # The attacker waits; the user, on their own address, does not.
    assert (await stack.login(name, PASSWORD, address=attacker)).status_code == 429
    assert (await stack.login(name, PASSWORD, address=address())).status_code == 200


async def test_the_account_wide_ceiling_pauses_new_addresses_only_and_briefly(
    stack: IdentityStack,
) -> None:
    name = fresh()
    await stack.register(name, PASSWORD)
    home = address()
    assert (await stack.login(name, PASSWORD, address=home)).status_code == 200
    # A distributed guesser: two failures from each of four addresses (8 = the ceiling).
    for _ in range(4):
        where = address()
        for _ in range(2):
            await stack.login(name, "wrong guess 1", address=where)
    paused = await stack.login(name, PASSWORD, address=address())
    assert paused.status_code == 429
    assert 1 <= int(paused.headers["retry-after"]) <= 2
    # The address the user signed in from before is not held back.
    assert (await stack.login(name, PASSWORD, address=home)).status_code == 200
    await asyncio.sleep(2.1)
    assert (await stack.login(name, PASSWORD, address=address())).status_code == 200


async def test_one_address_guessing_many_accounts_is_locked_out(stack: IdentityStack) -> None:
    name = fresh()
    await stack.register(name, PASSWORD)
    where = address()
    statuses = [
        (await stack.login(fresh("ghost"), PASSWORD, address=where)).status_code for _ in range(12)
    ]
    assert statuses == [401] * 11 + [429]
    # Right away (the first lock lasts LOCKOUT_BASE, 1 s): any account, from that address.
    refused = await stack.login(name, PASSWORD, address=where)
    assert refused.status_code == 429
    assert "retry-after" in refused.headers
    assert (await stack.login(name, PASSWORD, address=address())).status_code == 200


async def test_pair_waits_double_up_to_the_maximum() -> None:
    guard = LoginGuard(
        MemoryBackend(),
        LockoutPolicy(pair_failures=1, base=1, maximum=4, window=60, address_failures=100),
    )
    waits = []
    for _ in range(4):
        with pytest.raises(LoginLocked) as locked:
            await guard.failed("kim", "192.0.2.1")
        waits.append(int(locked.value.headers["Retry-After"]))
    assert waits == [1, 2, 4, 4]
    # Another address of the same account has its own count.
    with pytest.raises(LoginLocked) as other:
        await guard.failed("kim", "192.0.2.2")
    assert other.value.headers["Retry-After"] == "1"


@pytest.mark.integration
async def test_lockout_counters_live_in_redis(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}"
    policy = LockoutPolicy(pair_failures=2, base=2, maximum=8, window=60, address_failures=50)
    guard = LoginGuard(RedisBackend(redis_url), policy, prefix=prefix)
    twin = LoginGuard(RedisBackend(redis_url), policy, prefix=prefix)
    try:
        await guard.failed("lee", "192.0.2.1")
        with pytest.raises(LoginLocked):
            await guard.failed("lee", "192.0.2.1")
        # Another instance sharing Redis sees the same wait, for that pair only.
        with pytest.raises(LoginLocked) as locked:
            await twin.check("LEE", "192.0.2.1")
        assert int(locked.value.headers["Retry-After"]) == 2
        await twin.check("lee", "192.0.2.9")
    finally:
        await guard.backend.close()
        await twin.backend.close()


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
        assert (await stack.login(name, PASSWORD, address=address())).status_code == 200
        await asyncio.sleep(int(locked.headers["retry-after"]) + 0.1)
        assert (await stack.login(name, PASSWORD, address=where)).status_code == 200
