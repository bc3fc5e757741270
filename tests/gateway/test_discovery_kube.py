"""Must-show 7 at the gateway: EndpointSlices from a fake API server change the pools.

A real gateway in-process (its public and admin listeners, tests/gateway/conftest.py)
whose pools follow ``k8s:edge``: its own ``EndpointSliceWatcher`` (lightkube, found
through ``$KUBECONFIG`` as outside a cluster) against ``FakeKubeApi``, which speaks the
list and watch protocol. The endpoints are two tiny real upstreams on 127.0.0.1, so the
changes are seen in where requests go, not only in ``/cluster``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tests.gateway.conftest import GatewayUnderTest, start_gateway
from tests.libs.discovery.fake_kube import FakeKubeApi, endpoint_slice


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeApi]:
    server = FakeKubeApi("edge")
    await server.start()
    yield server
    await server.stop()


def kubeconfig(path: Path, api: FakeKubeApi) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": api.url}}],
                "users": [{"name": "fake", "user": {"token": api.token}}],
                "contexts": [
                    {"name": "fake", "context": {"cluster": "fake", "user": "fake"}},
                ],
                "current-context": "fake",
            }
        )
    )
    return path


def echo_slice(name: str, port: int, pods: list[tuple[str, bool | None]]) -> dict[str, object]:
    """A slice of the global ``echo`` Service: every pod at 127.0.0.1:<port>."""
    return endpoint_slice(
        name,
        service="echo",
        endpoints=[(pod, "127.0.0.1", ready) for pod, ready in pods],
        port=port,
    )


async def until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


async def served_by(gw: GatewayUnderTest, client: httpx.AsyncClient, n: int = 20) -> set[str]:
    """Which upstreams answered ``n`` requests through the gateway."""
    before = {name: s.requests for name, s in gw.upstreams.items()}
    for _ in range(n):
        resp = await client.get(f"{gw.url}/api/v1/echo/x")
        assert resp.status_code == 200, resp.text
    return {name for name, s in gw.upstreams.items() if s.requests > before[name]}


async def test_endpointslice_changes_from_the_api_server_change_the_gateways_pools(
    tmp_path: Path, api: FakeKubeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kubeconfig", api)))
    gen = start_gateway(tmp_path, {"a": 1, "b": 1}, discovery_source="k8s:edge")
    # The upstreams' ports are known once they run, so the slices go in after the start.
    gw = await gen.__anext__()
    try:
        discovery = gw.gateway.egress.discovery
        assert discovery is not None
        # One watcher per region (global pools: "-"); echo is global.
        assert set(discovery.followed) == {"k8s:edge@-", "k8s:edge@east"}
        pool = gw.gateway.upstreams.pool("echo", None)
        assert pool is not None

        def pods() -> dict[str, bool]:
            return {i.spec.id: i.healthy for i in pool.instances}

        # Listed (empty): the topology's instances are gone, the pool follows the slices.
        await until(lambda: pods() == {}, 5, "the pool is the (empty) listing's")
        await api.apply(echo_slice("echo-a", gw.ports["a"], [("echo-pod-a", True)]))
        await until(lambda: pods() == {"echo-pod-a": True}, 5, "pod a joined and is up")
        async with httpx.AsyncClient(timeout=5) as client:
            assert await served_by(gw, client) == {"a"}

            # An addition: a second Service slice with a ready pod and a not-ready one.
            await api.apply(
                echo_slice("echo-b", gw.ports["b"], [("echo-pod-b", True), ("echo-pod-c", False)])
            )
            took = await until(
                lambda: pods() == {"echo-pod-a": True, "echo-pod-b": True}, 5, "pod b joined"
            )
            print(f"slice added to pod b up: {took:.3f}s")  # noqa: T201
            assert await served_by(gw, client) == {"a", "b"}

            # Readiness: b not ready -> out of the pool at once; ready again -> back.
            await api.apply(
                echo_slice("echo-b", gw.ports["b"], [("echo-pod-b", False), ("echo-pod-c", False)])
            )
            await until(lambda: pods() == {"echo-pod-a": True}, 5, "pod b left (not ready)")
            assert await served_by(gw, client) == {"a"}
            await api.apply(echo_slice("echo-b", gw.ports["b"], [("echo-pod-b", True)]))
            await until(lambda: "echo-pod-b" in pods(), 5, "pod b back (ready)")
            await until(lambda: pods().get("echo-pod-b") is True, 5, "pod b up again")

            # A removal: a's slice deleted -> pod a leaves; every request goes to b.
            await api.delete("echo-a")
            await until(lambda: pods() == {"echo-pod-b": True}, 5, "pod a left")
            assert await served_by(gw, client) == {"b"}

            cluster = (await client.get(f"{gw.admin}/cluster")).json()
            assert cluster["discovery"]["sources"]["k8s:edge@-"]["stale"] is False
            assert cluster["discovery"]["sources"]["k8s:edge@-"]["joins"] >= 3
            assert cluster["discovery"]["sources"]["k8s:edge@-"]["leaves"] >= 2
            metrics = (await client.get(f"{gw.admin}/metrics")).text
            assert 'edge_gateway_discovery_stale{source="k8s:edge@-"} 0' in metrics
            assert 'edge_gateway_pool_instances{upstream="echo",state="active"} 1' in metrics
    finally:
        await gen.aclose()
