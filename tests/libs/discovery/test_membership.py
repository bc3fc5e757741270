"""The membership model every discovery source shares: values, diffs, events, staleness."""

from __future__ import annotations

import asyncio

import pytest

from edgelib.discovery import EtcdWatcher, Member, Membership, SourceSpec, open_source, parse_source
from edgelib.discovery.sources import SOURCE_PATTERN

A = Member("sv-user", "east", "a", "http://10.0.0.1:7110")
B = Member("sv-user", "east", "b", "http://10.0.0.2:7110", weight=3)
G = Member("auth-jwt", None, "g", "http://10.0.1.1:7102")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param({"service": "s", "instance": "i"}, "missing", id="no-url"),
        pytest.param({"service": "", "instance": "i", "url": "u"}, "non-empty", id="empty"),
        pytest.param({"service": "s", "instance": "i", "url": "u", "weight": 0}, "weight", id="w0"),
        pytest.param(
            {"service": "s", "instance": "i", "url": "u", "weight": True}, "weight", id="wbool"
        ),
        pytest.param({"service": "s", "instance": "i", "url": "u", "region": 1}, "region", id="r"),
        pytest.param({"service": "s", "instance": "i", "url": "u", "zone": 2}, "zone", id="zone"),
        pytest.param(["not", "a", "dict"], "missing", id="list"),
    ],
)
def test_a_value_that_is_not_a_member_is_refused(raw: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Member.from_json(raw)  # type: ignore[arg-type]


def test_a_member_round_trips_through_json() -> None:
    assert Member.from_json(B.to_json()) == B


async def test_replace_raises_only_the_differences() -> None:
    membership = Membership("test")
    async with membership.subscribe() as events:
        membership.replace([A, B])
        moved = Member("sv-user", "east", "b", "http://10.0.0.9:7110", weight=3)
        membership.replace([moved, G])
        seen = []
        while not events.empty():
            event = events.get_nowait()
            assert event is not None
            seen.append((event.kind, event.member.instance))
    assert seen == [("join", "a"), ("join", "b"), ("join", "g"), ("leave", "a"), ("update", "b")]
    assert membership.pools() == {("auth-jwt", None): (G,), ("sv-user", "east"): (moved,)}
    assert membership.resyncs == 2


async def test_stale_keeps_the_members_and_says_since_when() -> None:
    membership = Membership("test")
    assert membership.stale  # nothing listed yet
    membership.replace([A])
    membership.mark_fresh()
    assert membership.synced.is_set()
    membership.mark_stale(ConnectionError("refused"))
    await asyncio.sleep(0.01)
    status = membership.status()
    assert status["stale"] is True
    assert status["stale_for"] > 0
    assert status["last_error"] == "ConnectionError: refused"
    assert membership.members() == [A]
    membership.mark_fresh()
    assert membership.status()["stale"] is False
    assert membership.status()["last_error"] is None


async def test_a_slow_subscriber_loses_the_overflow_not_the_source() -> None:
    membership = Membership("test", queue_size=1)
    async with membership.subscribe() as events:
        membership.upsert(A)
        membership.upsert(B)
        assert events.qsize() == 1
        assert membership.dropped_events == 1
    assert membership.pool("sv-user", "east") == (A, B)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("static", SourceSpec("static"), id="static"),
        pytest.param("etcd:/edge/services", SourceSpec("etcd", "/edge/services"), id="etcd"),
        pytest.param("etcd:/edge/east/", SourceSpec("etcd", "/edge/east"), id="etcd-slash"),
        pytest.param("k8s:edge-east", SourceSpec("k8s", "edge-east"), id="k8s"),
    ],
)
def test_a_regions_discovery_value_names_its_source(value: str, expected: SourceSpec) -> None:
    assert parse_source(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("consul:x", id="unknown"),
        pytest.param("etcd:edge", id="relative"),
        pytest.param("k8s:Edge", id="upper"),
        pytest.param("k8s:", id="no-namespace"),
    ],
)
def test_a_bad_discovery_value_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="discovery source"):
        parse_source(value)


def test_sv_region_accepts_exactly_the_sources_discovery_parses() -> None:
    from sv_region.regions.schemas import RegionWrite

    pattern = RegionWrite.model_fields["discovery"].metadata
    texts = [getattr(m, "pattern", None) for m in pattern]
    assert f"^({SOURCE_PATTERN.pattern})$" in texts


async def test_open_source_makes_the_named_watcher() -> None:
    from lightkube import KubeConfig
    from lightkube.config.models import Cluster, User

    from edgelib.discovery.kubernetes import EndpointSliceWatcher

    assert open_source("static", etcd_url="http://127.0.0.1:1") is None
    etcd = open_source("etcd:/edge/east", etcd_url="http://127.0.0.1:1")
    assert isinstance(etcd, EtcdWatcher)
    assert etcd.prefix == "/edge/east/"
    await etcd.aclose()
    config = KubeConfig.from_one(
        cluster=Cluster(server="http://127.0.0.1:1"), user=User(token="t"), namespace="edge-east"
    )
    k8s = open_source("k8s:edge-east", etcd_url="", region="east", kube_config=config)
    assert isinstance(k8s, EndpointSliceWatcher)
    assert (k8s.namespace, k8s.region) == ("edge-east", "east")
    await k8s.aclose()
