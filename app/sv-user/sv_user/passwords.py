"""Password hashing with argon2id, off the event loop, in a bounded pool of its own.

argon2-cffi releases the GIL while it hashes, so threads hash in parallel, one core
each, and the event loop keeps answering (health checks, profile reads) during a
login storm. The pool is sv-user's own, so a storm never takes the threads other
work runs in (``asyncio.to_thread``'s default executor), and its queue is bounded:
past ``workers + max_waiting`` hashes in progress a request is refused at once with
503 and ``Retry-After`` instead of waiting behind seconds of hashing (doc/services/sv-user.md).

The hashing threads run at a lower CPU priority (``nice``, per thread on Linux): on a
machine the whole platform shares, a storm of logins takes the CPU only when nothing
else wants it, so token refreshes, health checks and the gateway stay quick while the
logins queue behind one another.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from edgelib.problems import ServiceUnavailable

T = TypeVar("T")

#: Name prefix of the hashing threads (seen in py-spy and in tests).
THREAD_PREFIX = "argon2"


def lower_thread_priority(niceness: int) -> None:
    """Lower the calling thread's CPU priority by ``niceness`` (Linux: nice is per thread).

    Where the platform cannot (another OS, a container that forbids it), the thread
    keeps its priority.
    """
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)


class PasswordHashingBusy(ServiceUnavailable):
    """Every hashing thread is busy and the queue is full: try again in a moment."""

    type_slug = "password-hashing-busy"


class PasswordHashing:
    """argon2id at the configured cost; verification re-hashes when the cost changed."""

    def __init__(
        self,
        *,
        memory_kib: int,
        iterations: int,
        parallelism: int,
        workers: int = 0,
        max_waiting: int = 64,
        niceness: int = 10,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=iterations,
            memory_cost=memory_kib,
            parallelism=parallelism,
            type=Type.ID,
        )
        #: Threads hashing at once (0: one per CPU); each holds ``memory_kib`` while it does.
        self.workers = workers or os.cpu_count() or 1
        self.limit = self.workers + max_waiting
        self.pending = 0
        self._pool = ThreadPoolExecutor(
            self.workers,
            thread_name_prefix=THREAD_PREFIX,
            initializer=lower_thread_priority,
            initargs=(niceness,),
        )
        # Verified against when the account does not exist, so that answer takes as
        # long as a wrong password for an existing one.
        self._dummy = self._hasher.hash("not-a-password-of-anyone")

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        if self.pending >= self.limit:
            raise PasswordHashingBusy(
                "too many password checks in progress", headers={"Retry-After": "1"}
            )
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)
        finally:
            self.pending -= 1

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; a missing hash still costs one verification."""
        try:
            return await self._run(
                self._hasher.verify, password_hash or self._dummy, password
            ) and (password_hash is not None)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def close(self) -> None:
        """Stop the threads; hashes not started yet are cancelled."""
        self._pool.shutdown(wait=False, cancel_futures=True)
