"""A breaker opened in one gateway worker opens in the others, through the backend."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from edgelib.backends import Backend, open_backend
from gateway_api.topology import load_topology
from gateway_api.upstreams.ejections import EjectionBus
from gateway_api.upstreams.pools import Upstreams
from tests.worker import free_port


def upstreams(tmp_path: Path) -> Upstreams:
    """The same two instances on every call for one test (nothing listens on them)."""
    topology = tmp_path / "topology.toml"
    if not topology.exists():
        # Ports of this worker's own: the instance ids, which the ejection messages on the
        # shared Redis channel carry, are then nobody else's.
        first, second = free_port(), free_port()
        topology.write_text(
            '[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n'
            '[[services]]\nname = "sv-user"\nregion = "east"\n'
            f"instances = [{{ port = {first} }}, {{ port = {second} }}]\n"
        )
    return Upstreams(load_topology(topology))


async def wait_until(check, timeout: float = 2.0) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "not seen in time"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_an_ejection_in_one_worker_reaches_the_others(
    backend: Backend, tmp_path: Path
) -> None:
    workers = [upstreams(tmp_path) for _ in range(3)]
    buses = [EjectionBus(w, backend) for w in workers]
    for bus in buses:
        await bus.start()
    try:
        await asyncio.sleep(0.1)  # subscriptions in place
        hung = [w.all_instances()[0] for w in workers]
        for _ in range(3):  # worker 0 sees three failures in a row: its breaker opens
            hung[0].breaker.on_failure(time.monotonic())
        assert hung[0].breaker.state == "open"
        took = await wait_until(lambda: all(i.breaker.state == "open" for i in hung))
        assert took < 1.0
        assert not any(i.eligible(time.monotonic()) for i in hung)
        # The other instance stays in service everywhere; nobody echoes the news back.
        assert all(w.all_instances()[1].breaker.state == "closed" for w in workers)
        await asyncio.sleep(0.1)
        assert [b.sent for b in buses] == [1, 0, 0]
        assert [b.applied for b in buses] == [0, 1, 1]
        # After the cool-down each worker lets its own trial through, as before.
        now = time.monotonic() + hung[1].breaker.cool_down
        assert hung[1].breaker.available(now)
    finally:
        for bus in buses:
            await bus.stop()


async def test_foreign_or_malformed_messages_change_nothing(tmp_path: Path) -> None:
    backend = open_backend("memory://")
    bus = EjectionBus(upstreams(tmp_path), backend)
    first = bus.upstreams.all_instances()[0]
    assert not bus.apply(b"garbage")
    assert not bus.apply(b"peer|no-such-instance|2.0")
    assert not bus.apply(f"{bus.origin}|{first.spec.id}|2.0".encode())  # our own
    assert not bus.apply(f"peer|{first.spec.id}|soon".encode())
    assert first.breaker.state == "closed"
    assert bus.apply(f"peer|{first.spec.id}|2.0".encode())
    assert first.breaker.state == "open"
    assert not bus.apply(f"peer|{first.spec.id}|2.0".encode())  # already open: no change
    await backend.close()
