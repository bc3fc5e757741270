"""Config push across real processes: sv-config, and probe services using edgelib's client.

Two flavours: one sv-config on SQLite with the in-process backend (the local stack), and
two sv-config instances sharing PostgreSQL and Redis, each probe watching a different one
(a release published on one instance reaches watchers of the other over pub/sub).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import PG_URL, REDIS_URL
from tests.sv_config.processes import (
    OPERATOR,
    Operator,
    Process,
    auth_rbac_process,
    grant,
    probe_process,
    probe_state,
    sv_config_process,
    wait_for,
)

# Setting up real processes on a busy 2-core machine can take well over the default.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

NS = "flags"
RELEASES = f"/api/v1/config/releases/local/default/{NS}"
GRAY = f"/api/v1/config/gray/local/default/{NS}"


@dataclass
class Cluster:
    flavour: str
    configs: list[Process]
    probes: dict[str, Process]
    ops: Operator


def report(what: str, values: list[float]) -> None:
    """Measured numbers go to stderr (shown with ``-s``); the asserts hold the limits."""
    shown = ", ".join(f"{v * 1000:.0f}" for v in values)
    sys.stderr.write(f"\n[config-push] {what}: [{shown}] ms\n")


@pytest.fixture(scope="module", params=["sqlite-memory", "postgres-redis"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    flavour: str = request.param
    var = tmp_path_factory.mktemp(f"config-{flavour}")
    rbac = auth_rbac_process(var)
    if flavour == "postgres-redis":
        schema = f"t_cfg_{uuid.uuid4().hex[:10]}"
        shared = {"SV_CONFIG_DATABASE_SCHEMA": schema, "SV_CONFIG_REDIS_URL": REDIS_URL}
        configs = [
            sv_config_process(var, rbac=rbac, name=f"sv-config-{i}", database_url=PG_URL, **shared)
            for i in (1, 2)
        ]
    else:
        configs = [sv_config_process(var, rbac=rbac)]
    processes: list[Process] = []
    ops: Operator | None = None
    try:
        rbac.start()
        processes.append(rbac)
        grant(rbac, OPERATOR.user_id)
        for proc in configs:
            proc.start()
            processes.append(proc)
        ops = Operator(configs[0].url)
        ops.namespace(NS, app="probe")
        ops.edit(NS, {"mode": "one", "limit": 1})
        ops.publish(NS, "first")
        # Each probe watches its own sv-config instance (the same one when there is one).
        probes = {
            "probe-a": probe_process(var, "probe-a", [configs[0].url], labels={"canary": "yes"}),
            "probe-b": probe_process(var, "probe-b", [configs[-1].url], region="west"),
        }
        for proc in probes.values():
            proc.start()
            processes.append(proc)
        yield Cluster(flavour, configs, probes, ops)
    finally:
        if ops is not None:
            ops.close()
        for proc in reversed(processes):
            proc.stop()
        if flavour == "postgres-redis":
            _drop_schema(schema)


def _drop_schema(schema: str) -> None:
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def drop() -> None:
        engine = create_async_engine(PG_URL)
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()

    asyncio.run(drop())


def running(probe: Process) -> dict[str, Any]:
    state: dict[str, Any] = probe_state(probe)["running"][NS]
    return state


def applied_at(probe: Process, release: int) -> float | None:
    for entry in probe_state(probe)["applied"]:
        if entry["namespace"] == NS and entry["release"] == release:
            return float(entry["at"])
    return None


def test_a_publish_reaches_every_subscribed_instance_within_a_second(cluster: Cluster) -> None:
    latencies: list[float] = []
    for n in range(5):
        cluster.ops.edit(NS, {"limit": 100 + n})
        before = time.time()
        release = cluster.ops.publish(NS, f"round {n}")["number"]
        for probe in cluster.probes.values():
            wait_for(lambda p=probe, r=release: applied_at(p, r) is not None, timeout=3.0)
            at = applied_at(probe, release)
            assert at is not None
            latencies.append(at - before)
            assert running(probe)["values"]["limit"] == 100 + n
    report(f"{cluster.flavour} publish -> applied in both probes", latencies)
    assert max(latencies) < 1.0


def test_gray_reaches_only_the_chosen_instance_then_promote_abort_and_rollback(
    cluster: Cluster,
) -> None:
    ops, a, b = cluster.ops, cluster.probes["probe-a"], cluster.probes["probe-b"]
    base = running(b)
    ops.edit(NS, {"mode": "gray"})
    before = time.time()
    gray = ops.ok("POST", GRAY, {"targets": {"instances": ["probe-a"]}}, 201)
    number = gray["release"]["number"]
    wait_for(lambda: applied_at(a, number) is not None, timeout=3.0)
    assert (applied_at(a, number) or 0) - before < 1.0
    assert running(a)["gray"] is True
    assert running(a)["values"]["mode"] == "gray"
    time.sleep(1.0)  # give probe-b every chance to (wrongly) receive it
    assert running(b)["release"] == base["release"]
    assert running(b)["values"] == base["values"]

    promoted = ops.ok("POST", GRAY + "/promote", {"comment": "good"}, 201)["number"]
    wait_for(lambda: running(b)["release"] == promoted, timeout=1.0)
    wait_for(lambda: running(a)["release"] == promoted, timeout=1.0)
    assert running(a)["gray"] is False
    assert running(b)["values"]["mode"] == "gray"

    # A gray release by label, then aborted: the canary goes back to the current release.
    ops.edit(NS, {"mode": "canary"})
    label_gray = ops.ok("POST", GRAY, {"targets": {"labels": {"canary": "yes"}}}, 201)
    wait_for(lambda: running(a)["release"] == label_gray["release"]["number"], timeout=1.0)
    ops.ok("POST", GRAY + "/abort", {"comment": "no"})
    wait_for(lambda: running(a)["release"] == promoted, timeout=1.0)
    assert running(a)["values"]["mode"] == "gray"
    assert running(b)["release"] == promoted

    # Rollback to the very first release: both run exactly its content again.
    first = ops.ok("GET", RELEASES + "/1")
    restored = ops.ok("POST", RELEASES + "/rollback", {"to": 1, "comment": "back"}, 201)
    assert restored["content"] == first["content"]
    for probe in (a, b):
        wait_for(lambda p=probe: running(p)["release"] == restored["number"], timeout=1.0)
        assert running(probe)["values"] == first["values"]


def test_a_restarted_service_starts_on_its_cache_while_sv_config_is_down_then_catches_up(
    cluster: Cluster,
) -> None:
    ops, a, b = cluster.ops, cluster.probes["probe-a"], cluster.probes["probe-b"]
    before_restart = running(b)
    b.stop()
    ops.edit(NS, {"limit": 4242})
    missed = ops.publish(NS, "while probe-b is away")["number"]
    wait_for(lambda: running(a)["release"] == missed, timeout=1.0)
    stopping = time.monotonic()
    for proc in cluster.configs:
        proc.stop()  # SIGTERM, with probe-a's long poll waiting on it
    stopped_in = time.monotonic() - stopping
    assert stopped_in < 5.0  # waiting watches are answered at once, not held to the end

    up_in = b.start()
    state = probe_state(b)
    assert state["connected"] is False
    assert state["running"][NS]["source"] == "cache"
    assert state["running"][NS]["release"] == before_restart["release"]
    assert state["running"][NS]["values"] == before_restart["values"]
    ready = httpx.get(b.url + "/readyz", timeout=5).json()
    assert ready["config"]["namespaces"][NS]["release"] == before_restart["release"]
    assert ready["config"]["connected"] is False
    metrics = httpx.get(b.url + "/metrics", timeout=5).text
    assert f'edge_config_release{{namespace="{NS}"}} {before_restart["release"]}.0' in metrics
    assert running(a)["release"] == missed  # probe-a keeps what it runs

    for proc in cluster.configs:
        proc.start()
    caught_up = wait_for(lambda: running(b)["release"] == missed, timeout=10.0)
    assert running(b)["values"]["limit"] == 4242
    assert probe_state(b)["running"][NS]["source"] == "server"
    report(
        f"{cluster.flavour} sv-config stop, probe start on cache, catch-up after sv-config is back",
        [stopped_in, up_in, caught_up],
    )
    # And pushes work again on the reconnected watches.
    ops.edit(NS, {"limit": 4243})
    again = ops.publish(NS, "after the outage")["number"]
    for probe in (a, b):
        wait_for(lambda p=probe: running(p)["release"] == again, timeout=3.0)
