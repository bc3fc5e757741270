"""The login lane: at most ``AUTH_JWT_LOGIN_CONCURRENCY`` logins in progress per process,
``AUTH_JWT_LOGIN_QUEUE`` more waiting their turn, and past that an immediate 503
problem+json with Retry-After; refreshes never wait in it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from auth_jwt.sessions.admission import LoginLane
from auth_jwt.sessions.exceptions import LoginBusy
from tests.identity_harness import identity_stack

PASSWORD = "correct horse 1"


async def test_the_lane_runs_its_concurrency_queues_the_next_and_refuses_past_the_queue() -> None:
    lane = LoginLane(2, 1)
    release = asyncio.Event()
    running = 0
    most = 0

    async def login() -> None:
        nonlocal running, most
        async with lane.slot():
            running += 1
            most = max(most, running)
            await release.wait()
            running -= 1

    first = [asyncio.create_task(login()) for _ in range(3)]
    await asyncio.sleep(0)
    assert running == 2
    assert lane.waiting == 1
    with pytest.raises(LoginBusy) as refused:
        async with lane.slot():
            pytest.fail("a fourth login must not get in")
    assert refused.value.status_code == 503
    assert refused.value.headers["Retry-After"] == "1"
    release.set()
    await asyncio.gather(*first)
    assert most == 2
    assert lane.waiting == 0
    # Emptied: a new login gets in at once.
    assert await _enter(lane)


async def test_a_waiting_login_that_is_cancelled_gives_its_place_back() -> None:
    lane = LoginLane(1, 1)
    release = asyncio.Event()
    holder = asyncio.create_task(_hold(lane, release))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(_hold(lane, release))
    await asyncio.sleep(0)
    assert lane.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert lane.waiting == 0
    release.set()
    await holder
    assert await _enter(lane)


async def test_a_lane_of_zero_lets_every_login_in() -> None:
    lane = LoginLane(0, 0)
    async with lane.slot(), lane.slot(), lane.slot():
        assert lane.waiting == 0


async def test_a_login_past_its_password_check_waits_for_a_place_instead_of_being_refused() -> None:
    lane = LoginLane(1, 0)
    release = asyncio.Event()
    holder = asyncio.create_task(_hold(lane, release))
    await asyncio.sleep(0)
    with pytest.raises(LoginBusy):
        await _enter(lane)
    finishing = asyncio.create_task(_enter(lane, refuse=False))
    await asyncio.sleep(0)
    assert not finishing.done()
    release.set()
    await holder
    await finishing


async def _enter(lane: LoginLane, *, refuse: bool = True) -> bool:
    """Take one of the lane's places and give it back; True once it was held."""
    async with lane.slot(refuse=refuse):
        return True


async def _hold(lane: LoginLane, release: asyncio.Event) -> None:
    """Hold one of the lane's places until ``release`` is set."""
    async with lane.slot():
        await release.wait()


async def test_logins_past_a_full_lane_answer_503_with_retry_after_and_refreshes_pass(
    tmp_path: Path,
) -> None:
    async with identity_stack(tmp_path, auth={"login_concurrency": 1, "login_queue": 0}) as stack:
        name = f"u{uuid.uuid4().hex[:10]}"
        await stack.register(name, PASSWORD)
        refresh_token = (await stack.login(name, client_type="app")).json()["refresh_token"]
        lane: LoginLane = stack.apps["auth-jwt"].state.login_lane
        unavailable = {"reason": "unavailable"}
        counted = REGISTRY.get_sample_value("edge_auth_jwt_failed_logins_total", unavailable)
        async with lane.slot():
            # The lane's one place is taken and nobody may wait: refused at once.
            refused = await stack.login(name)
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["type"].endswith("/login-busy")
            # A refresh is not a login: it never queues in the lane.
            refreshed = await stack.auth.post(
                "/api/v1/auth/refresh", json={"refresh_token": refresh_token}
            )
            assert refreshed.status_code == 200, refreshed.text
        after = REGISTRY.get_sample_value("edge_auth_jwt_failed_logins_total", unavailable)
        assert after == (counted or 0) + 1
        # With room again the same login gets in.
        assert (await stack.login(name)).status_code == 200


async def test_logins_beyond_the_lane_all_succeed_when_they_may_wait(tmp_path: Path) -> None:
    async with identity_stack(tmp_path, auth={"login_concurrency": 1, "login_queue": 8}) as stack:
        names = [f"u{uuid.uuid4().hex[:10]}" for _ in range(4)]
        for name in names:
            await stack.register(name, PASSWORD)
        answers = await asyncio.gather(*(stack.login(name) for name in names))
        assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
        assert stack.apps["auth-jwt"].state.login_lane.waiting == 0
