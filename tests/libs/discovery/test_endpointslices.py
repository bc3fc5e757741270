"""Kubernetes discovery: pools of ready pods from EndpointSlices, against a fake API server
that speaks the list and watch protocol (fake_kube.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from lightkube import KubeConfig
from lightkube.config.models import Cluster, User

from edgelib.discovery import Member
from edgelib.discovery.kubernetes import EndpointSliceWatcher
from tests.libs.discovery.fake_kube import FakeKubeApi, endpoint_slice
from tests.libs.discovery.helpers import wait_until


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeApi]:
    server = FakeKubeApi("edge")
    await server.start()
    yield server
    await server.stop()


def watcher_for(api: FakeKubeApi, **kwargs: object) -> EndpointSliceWatcher:
    config = KubeConfig.from_one(
        cluster=Cluster(server=api.url), user=User(token=api.token), namespace="edge"
    )
    return EndpointSliceWatcher("edge", config=config, max_retry=0.3, **kwargs)  # type: ignore[arg-type]


def instances(watcher: EndpointSliceWatcher, service: str, region: str | None) -> list[str]:
    return [m.instance for m in watcher.membership.pool(service, region)]


USER_EAST = endpoint_slice(
    "sv-user-east-abc12",
    service="sv-user",
    region="east",
    endpoints=[
        ("sv-user-east-1", "10.0.0.1", True),
        ("sv-user-east-2", "10.0.0.2", False),  # not ready: not in the pool
        ("sv-user-east-3", "10.0.0.3", None),  # readiness unknown: counts as ready
    ],
)
JWT = endpoint_slice(
    "auth-jwt-x9", service="auth-jwt", endpoints=[("auth-jwt-1", "10.0.1.1", True)], port=7102
)


async def test_the_listing_gives_pools_of_ready_pods(api: FakeKubeApi) -> None:
    await api.apply(USER_EAST)
    await api.apply(JWT)
    async with watcher_for(api) as watcher:
        await watcher.wait_synced(5)
        assert watcher.membership.fresh
        assert watcher.membership.pool("sv-user", "east") == (
            Member("sv-user", "east", "sv-user-east-1", "http://10.0.0.1:7110", zone="zone-a"),
            Member("sv-user", "east", "sv-user-east-3", "http://10.0.0.3:7110", zone="zone-a"),
        )
        assert watcher.membership.pool("auth-jwt", None)[0].url == "http://10.0.1.1:7102"
        assert set(watcher.membership.pools()) == {("sv-user", "east"), ("auth-jwt", None)}
    assert api.requests[0] == ("list", None)
    assert api.requests[1] == ("watch", str(api.version))


async def test_additions_removals_and_readiness_changes_follow_the_watch(
    api: FakeKubeApi,
) -> None:
    await api.apply(USER_EAST)
    async with watcher_for(api) as watcher:
        await watcher.wait_synced(5)
        async with watcher.membership.subscribe() as events:
            # Pod 2 becomes ready, pod 1 stops being ready.
            changed = endpoint_slice(
                "sv-user-east-abc12",
                service="sv-user",
                region="east",
                endpoints=[
                    ("sv-user-east-1", "10.0.0.1", False),
                    ("sv-user-east-2", "10.0.0.2", True),
                    ("sv-user-east-3", "10.0.0.3", None),
                ],
            )
            await api.apply(changed)
            seen = {await asyncio.wait_for(events.get(), 5) for _ in range(2)}
            assert {(e.kind, e.member.instance) for e in seen if e} == {
                ("leave", "sv-user-east-1"),
                ("join", "sv-user-east-2"),
            }
            # A second slice of the same service adds its pods to the same pool.
            more = endpoint_slice(
                "sv-user-east-def34",
                service="sv-user",
                region="east",
                endpoints=[("sv-user-east-4", "10.0.0.4", True)],
            )
            await api.apply(more)
            joined = await asyncio.wait_for(events.get(), 5)
            assert joined is not None
            assert (joined.kind, joined.member.instance) == ("join", "sv-user-east-4")
            assert instances(watcher, "sv-user", "east") == [
                "sv-user-east-2",
                "sv-user-east-3",
                "sv-user-east-4",
            ]
            # The first slice is deleted: its pods leave, the other slice's stay.
            await api.delete("sv-user-east-abc12")
            left = {await asyncio.wait_for(events.get(), 5) for _ in range(2)}
            assert {(e.kind, e.member.instance) for e in left if e} == {
                ("leave", "sv-user-east-2"),
                ("leave", "sv-user-east-3"),
            }
            assert instances(watcher, "sv-user", "east") == ["sv-user-east-4"]
        assert watcher.lists == 1  # all of it through one watch


async def test_a_watch_that_ends_resumes_from_its_resource_version(api: FakeKubeApi) -> None:
    await api.apply(USER_EAST)
    async with watcher_for(api) as watcher:
        await watcher.wait_synced(5)
        await api.apply(JWT)
        await wait_until(lambda: bool(instances(watcher, "auth-jwt", None)), 5, "jwt joined")
        version = watcher.resource_version
        await api.end_watches()  # the server's watch timeout
        await wait_until(lambda: ("watch", version) in api.requests, 5, "watch resumed")
        await api.delete(JWT["metadata"]["name"])
        await wait_until(lambda: not instances(watcher, "auth-jwt", None), 5, "jwt left")
        assert watcher.lists == 1
        assert watcher.membership.fresh


async def test_410_gone_lists_again(api: FakeKubeApi) -> None:
    await api.apply(USER_EAST)
    await api.apply(JWT)
    async with watcher_for(api) as watcher:
        await watcher.wait_synced(5)
        version = watcher.resource_version
        await wait_until(lambda: ("watch", version) in api.requests, 5, "watching")
        # The watch ends and its next one is held back; meanwhile auth-jwt's slice goes
        # and the server forgets the history, so the version the watcher has is gone.
        api.watches_open.clear()
        await api.end_watches()
        await wait_until(lambda: api.requests.count(("watch", version)) == 2, 5, "re-watch")
        await api.delete(JWT["metadata"]["name"])
        api.compact()
        api.watches_open.set()
        await wait_until(lambda: watcher.lists == 2, 5, "listed again after 410")
        await wait_until(lambda: not instances(watcher, "auth-jwt", None), 5, "jwt left")
        assert instances(watcher, "sv-user", "east") == ["sv-user-east-1", "sv-user-east-3"]
        assert watcher.membership.resyncs == 2
        assert watcher.membership.fresh
        assert api.requests[-2:] == [("list", None), ("watch", str(api.version))]


async def test_an_unreachable_api_server_keeps_the_pools_and_says_stale(
    api: FakeKubeApi,
) -> None:
    await api.apply(USER_EAST)
    async with watcher_for(api) as watcher:
        await watcher.wait_synced(5)
        pools = watcher.membership.pools()
        await api.stop()
        await wait_until(lambda: watcher.membership.stale, 5, "stale once the API is gone")
        await asyncio.sleep(0.5)
        assert watcher.membership.pools() == pools
        assert watcher.status()["stale"] is True
        # It comes back with a pod more: the watcher lists again and is current.
        await api.apply(
            endpoint_slice(
                "sv-user-east-def34",
                service="sv-user",
                region="east",
                endpoints=[("sv-user-east-4", "10.0.0.4", True)],
            )
        )
        await api.start()
        await wait_until(lambda: watcher.membership.fresh, 5, "fresh once the API is back")
        assert instances(watcher, "sv-user", "east") == [
            "sv-user-east-1",
            "sv-user-east-3",
            "sv-user-east-4",
        ]


async def test_a_label_selector_limits_the_slices(api: FakeKubeApi) -> None:
    await api.apply(USER_EAST)
    await api.apply(JWT)
    async with watcher_for(api, labels={"edge/region": "east"}) as watcher:
        await watcher.wait_synced(5)
        assert set(watcher.membership.pools()) == {("sv-user", "east")}
