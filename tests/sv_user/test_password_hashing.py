"""sv-user's password hashing: on its own bounded pool, never on the event loop."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
from argon2 import PasswordHasher

from edgelib.problems import ServiceUnavailable
from sv_user.passwords import THREAD_PREFIX, PasswordHashing, PasswordHashingBusy

OWASP = {"memory_kib": 19456, "iterations": 2, "parallelism": 1}


class Spy:
    """A stand-in hasher that records each call's thread, then lets the real one work."""

    def __init__(self, real: PasswordHasher, gate: threading.Event | None = None) -> None:
        self.real = real
        self.gate = gate
        self.threads: list[str] = []

    def _enter(self) -> None:
        self.threads.append(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(10)

    def hash(self, password: str) -> str:
        self._enter()
        return self.real.hash(password)

    def verify(self, hash_: str, password: str) -> bool:
        self._enter()
        return self.real.verify(hash_, password)


async def test_hashing_runs_on_its_own_threads_while_the_loop_keeps_turning() -> None:
    hashing = PasswordHashing(**OWASP, workers=2)
    stored = PasswordHasher(memory_cost=19456, time_cost=2, parallelism=1).hash("pw one")
    spy = hashing._hasher = Spy(hashing._hasher)  # type: ignore[assignment]
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            await asyncio.sleep(0)
            ticks += 1

    try:
        task = asyncio.create_task(ticker())
        results = await asyncio.gather(*(hashing.verify(stored, "pw one") for _ in range(6)))
        done = True
        await task
    finally:
        hashing.close()
    assert results == [True] * 6
    # Six argon2id checks at 19 MiB take tens of milliseconds each: a loop blocked by
    # them would turn a handful of times, not hundreds.
    assert ticks > 100
    assert len(spy.threads) == 6
    assert all(name.startswith(THREAD_PREFIX) for name in spy.threads)


def _thread_niceness(tid: int) -> int:
    """A thread's nice value, from the kernel's own table (field 19 of its stat line)."""
    with open(f"/proc/self/task/{tid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19; fields[0] is field 3 (state)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
async def test_hashing_threads_run_at_a_lower_cpu_priority_than_the_event_loop() -> None:
    hashing = PasswordHashing(**OWASP, workers=2, niceness=10)
    seen: dict[int, int] = {}

    def hash_and_look(password: str) -> str:
        tid = threading.get_native_id()
        seen[tid] = _thread_niceness(tid)
        return hashing._hasher.hash(password)

    try:
        await asyncio.gather(*(hashing._run(hash_and_look, "pw") for _ in range(4)))
    finally:
        hashing.close()
    loop_niceness = _thread_niceness(threading.get_native_id())
    assert seen
    assert all(value == min(loop_niceness + 10, 19) for value in seen.values()), seen


async def test_checks_past_the_bound_are_refused_at_once_with_retry_after() -> None:
    hashing = PasswordHashing(**OWASP, workers=1, max_waiting=1)
    release = threading.Event()
    hashing._hasher = Spy(hashing._hasher, release)  # type: ignore[assignment]
    try:
        running = [asyncio.create_task(hashing.hash(f"pw {n}")) for n in range(2)]
        await asyncio.sleep(0.05)
        assert hashing.pending == 2
        with pytest.raises(PasswordHashingBusy) as refused:
            await hashing.hash("one too many")
        assert isinstance(refused.value, ServiceUnavailable)
        assert refused.value.headers == {"Retry-After": "1"}
        release.set()
        hashes = await asyncio.gather(*running)
        assert all(h.startswith("$argon2id$") for h in hashes)
        # Room again once the queue drained.
        assert (await hashing.hash("after")).startswith("$argon2id$")
        assert hashing.pending == 0
    finally:
        release.set()
        hashing.close()


async def test_an_unknown_account_still_costs_one_verification() -> None:
    hashing = PasswordHashing(**OWASP, workers=1)
    spy = hashing._hasher = Spy(hashing._hasher)  # type: ignore[assignment]
    try:
        assert await hashing.verify(None, "not-a-password-of-anyone") is False
        assert len(spy.threads) == 1
    finally:
        hashing.close()
