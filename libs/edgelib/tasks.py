"""Background tasks: a managed set that shuts down cleanly, periodic work, and following a
pub/sub channel.

Every long-running task of a service or a library is spawned in a :class:`TaskSet` and
closed with it (in the lifespan, or the component's ``stop``/``aclose``): closing
cancels every task still running, waits for each to finish, and logs the ones that
failed. No task is left behind, and no failure goes unseen.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any

from edgelib.backends import Backend, BackendError

__all__ = ["Backoff", "TaskSet", "cancel", "follow", "periodic"]

logger = logging.getLogger("edgelib.tasks")


class TaskSet:
    """The background tasks one component owns.

    ``spawn`` starts a task and keeps a reference to it (asyncio keeps only weak ones);
    a task that ends with an exception has it logged at once. ``close`` cancels the
    rest and waits for them; ``drain`` waits without cancelling.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(
        self, work: Coroutine[Any, Any, Any], *, name: str | None = None
    ) -> asyncio.Task[Any]:
        """Run ``work`` in the background, owned by this set."""
        if self._closed:
            work.close()
            raise RuntimeError(f"task set {self.name!r} is closed")
        task = asyncio.get_running_loop().create_task(work, name=name or self.name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            logger.error(
                "background task failed",
                exc_info=exc,
                extra={"task": task.get_name(), "set": self.name},
            )

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def closed(self) -> bool:
        return self._closed

    async def drain(self) -> None:
        """Wait for the tasks running now to end by themselves (they are not cancelled)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        """Cancel every task still running and wait until each has finished."""
        self._closed = True
        while self._tasks:
            pending = set(self._tasks)
            for task in pending:
                task.cancel()
            # Failures other than the cancellation were logged by _finished.
            await asyncio.wait(pending)

    async def __aenter__(self) -> TaskSet:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def cancel(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel ``tasks`` (``None`` entries are skipped) and wait until each has finished.

    The one cancel-and-await of the code base: a task's own cancellation is not
    re-raised, a failure other than it is logged (not raised), and a cancellation of
    the caller while it waits propagates as it should.
    """
    pending = {task for task in tasks if task is not None}
    if not pending:
        return
    for task in pending:
        task.cancel()
    await asyncio.wait(pending)
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            logger.error("background task failed", exc_info=task.exception(), extra={"task": name})


class Backoff:
    """Exponential backoff with equal jitter: the n-th wait is in [d/2, d], d = base * 2^n."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap

    def delay(self, failures: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** max(0, failures - 1))
        return random.uniform(ceiling / 2, ceiling)


async def periodic(
    interval: float,
    fn: Callable[[], Awaitable[object]],
    *,
    name: str,
    first_after: float = 0.0,
) -> None:
    """Run ``fn`` every ``interval`` seconds until cancelled; a failure is logged, and the
    next round runs as planned. The first round runs after ``first_after`` seconds.

    Spawn it in a :class:`TaskSet`: ``tasks.spawn(periodic(30, purge, name="purge"))``.
    """
    await asyncio.sleep(first_after)
    while True:
        try:
            await fn()
        except Exception:
            logger.exception(
                "periodic task failed; next round in %.1f s", interval, extra={"task": name}
            )
        await asyncio.sleep(interval)


async def follow(
    backend: Backend,
    channel: str,
    on_message: Callable[[bytes], Awaitable[object] | object],
    *,
    name: str,
    backoff: Backoff | None = None,
    on_subscribed: Callable[[], Awaitable[object] | object] | None = None,
) -> None:
    """Hand every message published on ``channel`` to ``on_message``, until cancelled.

    When the subscription is lost (the backend went away) it is made again after a
    backoff; ``on_subscribed`` runs each time it is (re)made, to catch up on what a
    gap may have missed. A failing ``on_message`` is logged and the next message is
    handled. Pub/sub is fire-and-forget: whoever follows must also poll, or accept a
    missed message.
    """
    backoff = backoff or Backoff(0.5, 10.0)
    failures = 0
    while True:
        try:
            subscription = await backend.subscribe(channel)
        except BackendError as exc:
            failures += 1
            logger.warning("subscribe failed", extra={"task": name, "error": str(exc)})
            await asyncio.sleep(backoff.delay(failures))
            continue
        try:
            failures = 0
            if on_subscribed is not None:
                await _maybe_await(on_subscribed())
            async for _channel, message in subscription:
                try:
                    await _maybe_await(on_message(message))
                except Exception:
                    logger.exception("message handler failed", extra={"task": name})
            # The subscription ended by itself: the backend is closing. Try again later.
            failures += 1
        except BackendError as exc:
            failures += 1
            logger.warning("subscription lost", extra={"task": name, "error": str(exc)})
        finally:
            await subscription.close()
        await asyncio.sleep(backoff.delay(failures))


async def _maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value
