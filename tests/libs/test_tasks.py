"""Background tasks: a set that closes cleanly, periodic work, following a channel."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edgelib.backends import Backend, open_backend
from edgelib.tasks import Backoff, TaskSet, cancel, follow, periodic


async def test_close_cancels_every_task_and_waits_for_its_cleanup() -> None:
    cleaned: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits
            cleaned.append(name)

    tasks = TaskSet("test")
    spawned = [tasks.spawn(forever(n), name=n) for n in ("a", "b", "c")]
    await asyncio.sleep(0)
    assert len(tasks) == 3
    await tasks.close()
    assert sorted(cleaned) == ["a", "b", "c"]
    assert all(t.cancelled() for t in spawned)
    assert len(tasks) == 0


async def test_a_failed_task_is_logged_at_once_and_forgotten(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken() -> None:
        raise ValueError("bad row")

    with caplog.at_level(logging.ERROR, logger="edgelib.tasks"):
        async with TaskSet("test") as tasks:
            task = tasks.spawn(broken(), name="broken")
            await asyncio.wait({task})
            await asyncio.sleep(0)
            assert len(tasks) == 0
    [record] = caplog.records
    assert record.getMessage() == "background task failed"
    assert record.exc_info is not None
    assert record.exc_info[0] is ValueError


async def test_a_closed_set_takes_no_new_task() -> None:
    tasks = TaskSet("test")
    await tasks.close()

    async def work() -> None:
        return None

    with pytest.raises(RuntimeError, match="closed"):
        tasks.spawn(work())


async def test_drain_waits_for_running_tasks_without_cancelling_them() -> None:
    done: list[int] = []

    async def work(n: int) -> None:
        await asyncio.sleep(0.01 * n)
        done.append(n)

    tasks = TaskSet("test")
    for n in (3, 1, 2):
        tasks.spawn(work(n))
    await tasks.drain()
    assert done == [1, 2, 3]


async def test_periodic_keeps_its_rhythm_through_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rounds = 0

    async def tick() -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 2:
            raise ConnectionError("database away")

    with caplog.at_level(logging.ERROR, logger="edgelib.tasks"):
        async with TaskSet("test") as tasks:
            tasks.spawn(periodic(0.01, tick, name="tick"))
            for _ in range(200):
                if rounds >= 4:
                    break
                await asyncio.sleep(0.01)
    assert rounds >= 4
    assert [r.getMessage() for r in caplog.records][:1] == [
        "periodic task failed; next round in 0.0 s"
    ]


class _FlakyBackend:
    """The memory backend, whose first subscription is lost after one message."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.subscribes = 0

    async def subscribe(self, channel: str) -> object:
        from edgelib.backends import BackendError

        self.subscribes += 1
        subscription = await self.inner.subscribe(channel)
        if self.subscribes > 1:
            return subscription

        class Lost:
            def __aiter__(self) -> Lost:
                self.seen = 0
                return self

            async def __anext__(self) -> tuple[str, bytes]:
                if self.seen:
                    raise BackendError("connection reset")
                self.seen += 1
                return await subscription.__aiter__().__anext__()

            async def close(self) -> None:
                await subscription.close()

        return Lost()


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
async def test_follow_resubscribes_after_a_lost_subscription_and_catches_up(
    backend: Backend,
) -> None:
    flaky = _FlakyBackend(backend)
    got: list[bytes] = []
    caught_up = 0

    def catch_up() -> None:
        nonlocal caught_up
        caught_up += 1

    async with TaskSet("test") as tasks:
        tasks.spawn(
            follow(
                flaky,  # type: ignore[arg-type]
                "news",
                got.append,
                name="news",
                backoff=Backoff(0.01, 0.02),
                on_subscribed=catch_up,
            )
        )
        for message in (b"one", b"two", b"three"):
            for _ in range(200):
                await backend.publish("news", message)
                await asyncio.sleep(0.01)
                if message in got:
                    break
    assert flaky.subscribes == 2
    assert caught_up == 2
    assert got[0] == b"one"
    assert b"three" in got


async def test_follow_survives_a_handler_that_fails() -> None:
    backend = open_backend("memory://")
    got: list[bytes] = []

    async def handle(message: bytes) -> None:
        if message == b"bad":
            raise ValueError("malformed")
        got.append(message)

    async with TaskSet("test") as tasks:
        tasks.spawn(follow(backend, "news", handle, name="news"))
        for _ in range(200):
            await backend.publish("news", b"bad")
            await backend.publish("news", b"good")
            await asyncio.sleep(0.01)
            if got:
                break
    assert got[0] == b"good"
    await backend.close()


async def test_cancel_waits_for_cleanup_and_skips_none() -> None:
    cleaned: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)
            cleaned.append(name)

    a = asyncio.create_task(forever("a"))
    b = asyncio.create_task(forever("b"))
    await asyncio.sleep(0)
    await cancel(a, None, b)
    assert sorted(cleaned) == ["a", "b"]
    assert a.cancelled()
    assert b.cancelled()
    await cancel(None)  # nothing to do
    await cancel(a)  # already finished: nothing to do either


async def test_cancel_logs_a_failure_instead_of_raising_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise OSError("cleanup failed")

    task = asyncio.create_task(fails_on_cancel(), name="flaky")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="edgelib.tasks"):
        await cancel(task)
    [record] = caplog.records
    assert record.getMessage() == "background task failed"
    assert record.exc_info is not None
    assert record.exc_info[0] is OSError
    assert record.__dict__["task"] == "flaky"


async def test_cancel_lets_the_callers_own_cancellation_through() -> None:
    release = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await release.wait()

    inner = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel(inner))
    await asyncio.sleep(0.01)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    release.set()
    await asyncio.wait({inner})
    assert inner.cancelled()
