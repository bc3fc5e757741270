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
    async with lane.slot():
        pass


async def test_a_waiting_login_that_is_cancelled_gives_its_place_back() -> None:
    lane = LoginLane(1, 1)
    release = asyncio.Event()

    async def hold() -> None:
        async with lane.slot():
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert lane.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert lane.waiting == 0
    release.set()
    await holder
    async with lane.slot():
        pass


async def test_a_lane_of_zero_lets_every_login_in() -> None:
    lane = LoginLane(0, 0)
    async with lane.slot(), lane.slot(), lane.slot():
        assert lane.waiting == 0


async def test_logins_past_a_full_lane_answer_503_with_retry_after_and_refreshes_pass(
    tmp_path: Path,
) -> None:
    async with identity_stack(tmp_path, auth={"login_concurrency": 1, "login_queue": 1}) as stack:
        names = [f"u{uuid.uuid4().hex[:10]}" for _ in range(3)]
        for name in names:
            await stack.register(name, PASSWORD)
        # Another client type: the logins below do not supersede this session.
        refresh_token = (await stack.login(names[0], client_type="app")).json()["refresh_token"]
        unavailable = {"reason": "unavailable"}
        counted = REGISTRY.get_sample_value("edge_auth_jwt_failed_logins_total", unavailable)
        # One login hashing in sv-user, one waiting its turn, the third refused.
        answers = await asyncio.gather(*(stack.login(name) for name in names))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 200, 503], [a.text for a in answers]
        refused = next(a for a in answers if a.status_code == 503)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["type"].endswith("/login-busy")
        after = REGISTRY.get_sample_value("edge_auth_jwt_failed_logins_total", unavailable)
        assert after == (counted or 0) + 1
        # A refresh is not a login: it does not queue in the lane.
        refreshed = await stack.auth.post(
            "/api/v1/auth/refresh", json={"refresh_token": refresh_token}
        )
        assert refreshed.status_code == 200, refreshed.text
        # Once the lane has room again the refused user gets in.
        again = next(n for n, a in zip(names, answers, strict=True) if a.status_code == 503)
        assert (await stack.login(again)).status_code == 200
