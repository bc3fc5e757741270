"""The etcd registry on a real etcd: registration, lease, crash, deregistration, watching."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from edgelib.discovery import (
    EtcdClient,
    EtcdWatcher,
    Member,
    MembershipEvent,
    Registrar,
    member_key,
)
from tests.libs.discovery.etcd_server import EtcdServer
from tests.libs.discovery.helpers import CuttableProxy, wait_until

pytestmark = pytest.mark.integration

PREFIX = "/edge/services"


def member(instance: str, *, service: str = "sv-user", region: str | None = "east") -> Member:
    port = 7000 + sum(map(ord, instance)) % 900
    return Member(
        service=service,
        region=region,
        instance=instance,
        url=f"http://127.0.0.1:{port}",
        weight=2,
        zone="z1",
        version="0.1.0",
        started="2026-01-01T00:00:00Z",
    )


@pytest.fixture
async def client(etcd: EtcdServer) -> AsyncIterator[EtcdClient]:
    async with EtcdClient(etcd.url) as c:
        yield c


async def keys(client: EtcdClient) -> dict[str, dict[str, object]]:
    _, kvs = await client.get_prefix(PREFIX + "/")
    return {kv.key: orjson.loads(kv.value) for kv in kvs}


async def test_registration_appears_with_its_lease(etcd: EtcdServer, client: EtcdClient) -> None:
    m = member("sv-user-east-7201")
    registrar = Registrar(etcd.url, m, prefix=PREFIX, ttl=10)
    await registrar.start()
    try:
        key = "/edge/services/sv-user/east/sv-user-east-7201"
        assert registrar.key == key == member_key(PREFIX, m)
        _, kvs = await client.get_prefix(key)
        assert len(kvs) == 1
        assert orjson.loads(kvs[0].value) == {
            "service": "sv-user",
            "region": "east",
            "instance": "sv-user-east-7201",
            "url": m.url,
            "weight": 2,
            "zone": "z1",
            "version": "0.1.0",
            "started": "2026-01-01T00:00:00Z",
        }
        assert kvs[0].lease == registrar.lease != 0
        assert 8 <= await client.time_to_live(kvs[0].lease) <= 10
    finally:
        await registrar.stop()


async def test_a_global_service_registers_under_the_dash_region(
    etcd: EtcdServer, client: EtcdClient
) -> None:
    registrar = Registrar(etcd.url, member("auth-jwt-7102", service="auth-jwt", region=None))
    await registrar.start()
    try:
        assert list(await keys(client)) == ["/edge/services/auth-jwt/-/auth-jwt-7102"]
    finally:
        await registrar.stop()


async def test_the_keepalive_keeps_the_key_past_its_ttl(
    etcd: EtcdServer, client: EtcdClient
) -> None:
    registrar = Registrar(etcd.url, member("a"), prefix=PREFIX, ttl=2)
    await registrar.start()
    try:
        await asyncio.sleep(5)  # two and a half TTLs
        assert registrar.key in await keys(client)
        assert registrar.registrations == 1  # the same lease all along
        assert registrar.lease is not None
        assert await client.time_to_live(registrar.lease) > 0
    finally:
        await registrar.stop()


async def test_a_crashed_instance_is_gone_within_the_ttl_plus_one_second(
    etcd: EtcdServer, client: EtcdClient
) -> None:
    ttl = 3
    registrar = Registrar(etcd.url, member("a"), prefix=PREFIX, ttl=ttl)
    await registrar.start()
    await asyncio.sleep(1.2)  # one keep-alive has happened
    assert registrar.key in await keys(client)
    await registrar.abandon()  # kill -9: no revoke, the keep-alive just stops
    crashed = time.monotonic()
    seen_after: list[float] = []
    while registrar.key in await keys(client):
        seen_after.append(time.monotonic() - crashed)
        assert time.monotonic() - crashed <= ttl + 1, "still registered after TTL + 1 s"
        await asyncio.sleep(0.05)
    # It stayed until its lease ran out: etcd removed it, nobody deleted it.
    assert seen_after
    assert seen_after[-1] >= ttl - ttl / 3 - 0.5


async def test_a_graceful_stop_deregisters_at_once(etcd: EtcdServer, client: EtcdClient) -> None:
    registrar = Registrar(etcd.url, member("a"), prefix=PREFIX, ttl=10)
    await registrar.start()
    assert registrar.key in await keys(client)
    started = time.monotonic()
    await registrar.stop()
    assert registrar.key not in await keys(client)
    assert time.monotonic() - started < 1.0
    await registrar.stop()  # twice is harmless


async def test_an_instance_started_before_etcd_registers_once_it_answers(
    etcd: EtcdServer, client: EtcdClient
) -> None:
    etcd.stop()
    registrar = Registrar(etcd.url, member("early"), prefix=PREFIX, ttl=5, retry=0.2)
    await registrar.start()  # does not fail the service's start
    try:
        assert not registrar.registered
        etcd.start()
        await wait_until(lambda: registrar.registered, 10, "registered once etcd is up")
        assert registrar.key in await keys(client)
    finally:
        await registrar.stop()


async def test_the_watcher_sees_joins_updates_and_leaves(etcd: EtcdServer) -> None:
    first = Registrar(etcd.url, member("sv-user-east-7201"), ttl=5)
    await first.start()
    async with EtcdWatcher(etcd.url) as watcher:
        await watcher.wait_synced(5)
        assert watcher.membership.fresh
        assert [m.instance for m in watcher.membership.pool("sv-user", "east")] == [
            "sv-user-east-7201"
        ]
        async with watcher.membership.subscribe() as events:
            second = Registrar(etcd.url, member("sv-user-east-7203"), ttl=5)
            await second.start()
            joined = await asyncio.wait_for(events.get(), 2)
            assert isinstance(joined, MembershipEvent)
            assert (joined.kind, joined.member) == ("join", second.member)
            assert watcher.membership.pool("sv-user", "east") == (first.member, second.member)

            async with EtcdClient(etcd.url) as client:
                heavier = Member(**{**second.member.to_json(), "weight": 5})
                value = orjson.dumps(heavier.to_json())
                await client.put(second.key, value, lease=second.lease or 0)
            updated = await asyncio.wait_for(events.get(), 2)
            assert updated is not None
            assert (updated.kind, updated.member.weight) == ("update", 5)

            await first.stop()
            left = await asyncio.wait_for(events.get(), 2)
            assert left is not None
            assert (left.kind, left.member) == ("leave", first.member)
            assert watcher.membership.pool("sv-user", "east") == (heavier,)
            await second.stop()
            left = await asyncio.wait_for(events.get(), 2)
            assert left is not None
            assert left.kind == "leave"
            assert watcher.membership.pools() == {}


async def test_the_watcher_ignores_values_that_are_not_members(etcd: EtcdServer) -> None:
    async with EtcdClient(etcd.url) as client:
        await client.put(f"{PREFIX}/sv-user/east/junk", b"not json")
        await client.put(f"{PREFIX}/sv-user/east/liar", orjson.dumps(member("other").to_json()))
        await client.put(f"{PREFIX}/too/deep/a/b", orjson.dumps(member("b").to_json()))
        good = member("good")
        await client.put(member_key(PREFIX, good), orjson.dumps(good.to_json()))
    async with EtcdWatcher(etcd.url) as watcher:
        await watcher.wait_synced(5)
        assert watcher.membership.members() == [good]


async def test_the_watcher_resumes_after_an_etcd_restart_from_its_revision(
    etcd: EtcdServer,
) -> None:
    stays = Registrar(etcd.url, member("stays"), ttl=10)
    await stays.start()
    async with EtcdWatcher(etcd.url, max_retry=0.5) as watcher:
        await watcher.wait_synced(5)
        revision = watcher.revision
        etcd.stop()
        await wait_until(lambda: watcher.membership.stale, 5, "stale once etcd stops")
        assert watcher.membership.pool("sv-user", "east") == (stays.member,)
        etcd.start()
        # A join and a leave that happen before the watcher is back: replayed, in order.
        async with watcher.membership.subscribe() as events:
            async with EtcdClient(etcd.url) as client:
                brief = member("brief")
                key = member_key(PREFIX, brief)
                await client.put(key, orjson.dumps(brief.to_json()))
                await client.delete(key)
            kinds = [await asyncio.wait_for(events.get(), 10) for _ in range(2)]
        assert [(e.kind, e.member.instance) for e in kinds if e] == [
            ("join", "brief"),
            ("leave", "brief"),
        ]
        await wait_until(lambda: watcher.membership.fresh, 5, "fresh again")
        # Resumed from the revision it had reached, not listed again.
        assert watcher.watch_starts[0] == revision + 1
        assert revision + 1 in watcher.watch_starts[1:]
        assert watcher.membership.resyncs == 1
        assert watcher.membership.pool("sv-user", "east") == (stays.member,)
    await stays.stop()


async def test_a_compacted_revision_makes_the_watcher_resync_in_full(etcd: EtcdServer) -> None:
    proxy = CuttableProxy(etcd.client_port)
    await proxy.start()
    async with EtcdClient(etcd.url) as client:
        before = [member("a"), member("b")]
        for m in before:
            await client.put(member_key(PREFIX, m), orjson.dumps(m.to_json()))
        async with EtcdWatcher(proxy.url, max_retry=0.5) as watcher:
            await watcher.wait_synced(5)
            assert watcher.membership.members() == before
            await proxy.cut()
            await wait_until(lambda: watcher.membership.stale, 5, "stale once cut off")
            # Meanwhile: b leaves, c joins, and etcd compacts past what the watcher saw.
            await client.delete(member_key(PREFIX, before[1]))
            c = member("c")
            revision = await client.put(member_key(PREFIX, c), orjson.dumps(c.to_json()))
            await client.compact(revision)
            async with watcher.membership.subscribe() as events:
                await proxy.restore()
                await wait_until(lambda: watcher.membership.fresh, 10, "fresh after the resync")
                seen = []
                while not events.empty():
                    event = events.get_nowait()
                    assert event is not None
                    seen.append((event.kind, event.member.instance))
            assert sorted(seen) == [("join", "c"), ("leave", "b")]
            assert watcher.membership.members() == [before[0], c]
            assert watcher.membership.resyncs == 2
            assert watcher.revision >= revision
    await proxy.aclose()


async def test_etcd_stopped_keeps_the_pools_and_says_stale_until_it_returns(
    etcd: EtcdServer,
) -> None:
    registrars = [Registrar(etcd.url, member(n), ttl=10) for n in ("a", "b")]
    for r in registrars:
        await r.start()
    async with EtcdWatcher(etcd.url, max_retry=0.5, probe_interval=0.5) as watcher:
        await watcher.wait_synced(5)
        pools = watcher.membership.pools()
        assert len(pools[("sv-user", "east")]) == 2
        etcd.stop()
        took = await wait_until(lambda: watcher.membership.stale, 3, "stale once etcd stops")
        status = watcher.status()
        assert status["stale"] is True
        assert status["last_error"]
        await asyncio.sleep(2)
        assert watcher.membership.pools() == pools  # no mass removal
        assert watcher.membership.stale
        etcd.start()
        back = await wait_until(lambda: watcher.membership.fresh, 10, "fresh once etcd is back")
        assert watcher.membership.pools() == pools
        assert watcher.status()["stale"] is False
        print(f"stale after {took:.2f}s; fresh {back:.2f}s after etcd restarted")  # noqa: T201
    for r in registrars:
        await r.stop()
