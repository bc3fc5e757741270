"""The config-centre client against a real sv-config app (in-process) and a dead one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pydantic_settings import SettingsConfigDict

from edgelib.app import add_readiness_detail, create_service_app
from edgelib.configclient import ConfigClient, ConfigRejected, ConfigSnapshot
from edgelib.settings import DEV_SERVICE_SECRET, ServiceSettings
from edgelib.signing import ServiceSigner
from sv_config.config import Settings
from tests.helpers import running
from tests.sv_config.conftest import Caller, config_app

SIGNER = ServiceSigner("sv-user", DEV_SERVICE_SECRET)


class Switchable(httpx.AsyncBaseTransport):
    """sv-config in-process while ``up``; a refused connection otherwise."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.up = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[Caller, Switchable]]:
    app = config_app(Settings(var_dir=tmp_path / "server"))
    async with running(app) as http:
        alice = Caller(http)
        await alice.namespace("flags")
        await alice.set("flags", "mode", "one")
        assert (await alice.publish("flags")).status_code == 201
        yield alice, Switchable(app)


def make_client(transport: httpx.AsyncBaseTransport, tmp_path: Path, **kwargs: Any) -> ConfigClient:
    options: dict[str, Any] = {
        "namespaces": ["flags"],
        "environment": "test",
        "instance_id": "svc-east-1",
        "region": "east",
        "cache_dir": tmp_path / "cache",
        "start_timeout": 1.0,
        "retry_max": 0.2,
        "wait": 5.0,
        **kwargs,
    }
    return ConfigClient("http://sv-config", signer=SIGNER, transport=transport, **options)


async def until(predicate: Any, timeout: float = 2.0) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, "condition not met in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def metric(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_loads_at_start_and_applies_published_changes_live(
    server: tuple[Caller, Switchable], tmp_path: Path
) -> None:
    alice, transport = server
    seen: list[ConfigSnapshot] = []
    client = make_client(transport, tmp_path)
    client.on_change(seen.append, namespace="flags")
    await client.start()
    try:
        assert client.values("flags") == {"mode": "one"}
        assert [s.release for s in seen] == [1]
        assert client.snapshot("flags").source == "server"
        assert metric("edge_config_release", namespace="flags") == 1

        await asyncio.sleep(0.1)  # the long poll is waiting
        await alice.set("flags", "mode", "two")
        started = time.monotonic()
        await alice.publish("flags")
        await until(lambda: client.values("flags") == {"mode": "two"})
        assert time.monotonic() - started < 1.0
        assert [s.release for s in seen] == [1, 2]
        assert metric("edge_config_release", namespace="flags") == 2
        assert client.readiness()["namespaces"]["flags"] == {
            "release": 2,
            "gray": False,
            "source": "server",
            "cluster": "default",
        }
    finally:
        await client.stop()


async def test_readyz_shows_the_running_config_version(
    server: tuple[Caller, Switchable], tmp_path: Path
) -> None:
    class ProbeSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="PROBE_", extra="ignore")
        service_name: ClassVar[str] = "probe"

    _alice, transport = server
    client = make_client(transport, tmp_path)
    app = create_service_app(ProbeSettings(var_dir=tmp_path), title="probe")
    add_readiness_detail(app, "config", client.readiness)
    await client.start()
    try:
        async with running(app) as http:
            ready = (await http.get("/readyz")).json()
            metrics = (await http.get("/metrics")).text
    finally:
        await client.stop()
    assert ready["status"] == "ready"
    assert ready["config"]["namespaces"]["flags"]["release"] == 1
    assert ready["config"]["connected"] is True
    assert 'edge_config_release{namespace="flags"} 1.0' in metrics


async def test_starts_from_its_cache_while_sv_config_is_down_and_catches_up(
    server: tuple[Caller, Switchable], tmp_path: Path
) -> None:
    alice, transport = server
    client = make_client(transport, tmp_path)
    await client.start()
    await client.stop()
    assert client.cache_path("flags").exists()

    # Release 2 is made while the service is away; then sv-config goes down.
    await alice.set("flags", "mode", "two")
    await alice.publish("flags")
    transport.up = False
    restarted = make_client(transport, tmp_path)
    seen: list[int] = []
    restarted.on_change(lambda s: seen.append(s.release))
    started = time.monotonic()
    await restarted.start()
    try:
        assert time.monotonic() - started < 1.5
        assert restarted.values("flags") == {"mode": "one"}
        assert restarted.snapshot("flags").source == "cache"
        assert restarted.connected is False
        assert metric("edge_config_from_cache", namespace="flags") == 1

        transport.up = True
        await until(lambda: restarted.values("flags") == {"mode": "two"}, timeout=3.0)
        assert seen == [1, 2]
        assert restarted.snapshot("flags").source == "server"
        assert restarted.connected is True
    finally:
        await restarted.stop()


async def test_a_confirmed_cache_is_marked_as_served(
    server: tuple[Caller, Switchable], tmp_path: Path
) -> None:
    _alice, transport = server
    first = make_client(transport, tmp_path)
    await first.start()
    await first.stop()
    transport.up = False
    second = make_client(transport, tmp_path)
    await second.start()
    try:
        assert second.snapshot("flags").source == "cache"
        transport.up = True
        await until(lambda: second.snapshot("flags").source == "server", timeout=3.0)
        assert second.snapshot("flags").release == 1
        assert metric("edge_config_from_cache", namespace="flags") == 0
    finally:
        await second.stop()


async def test_a_refused_release_keeps_the_running_one_and_is_not_cached(
    server: tuple[Caller, Switchable], tmp_path: Path
) -> None:
    alice, transport = server

    def only_known_modes(snapshot: ConfigSnapshot) -> None:
        if snapshot.get("mode") not in ("one", "two"):
            raise ConfigRejected(f"unknown mode {snapshot.get('mode')!r}")

    client = make_client(transport, tmp_path)
    client.on_change(only_known_modes, namespace="flags")
    await client.start()
    try:
        await alice.set("flags", "mode", "bogus")
        await alice.publish("flags")
        await until(lambda: "rejected" in client.readiness())
        assert client.readiness()["rejected"] == {"flags": 2}
        assert client.values("flags") == {"mode": "one"}
        assert b'"one"' in client.cache_path("flags").read_bytes()
        await alice.set("flags", "mode", "two")
        await alice.publish("flags")
        await until(lambda: client.values("flags") == {"mode": "two"})
        assert "rejected" not in client.readiness()
    finally:
        await client.stop()


async def test_the_client_says_who_it_is_so_a_gray_release_can_target_it(
    server: tuple[Caller, Switchable], tmp_path: Path
) -> None:
    alice, transport = server
    canary = make_client(transport, tmp_path / "a", instance_id="a", labels={"canary": "yes"})
    plain = make_client(transport, tmp_path / "b", instance_id="b")
    await canary.start()
    await plain.start()
    try:
        await alice.set("flags", "mode", "gray")
        gray = {"targets": {"labels": {"canary": "yes"}}}
        resp = await alice.post("/api/v1/config/gray/test/default/flags", gray)
        assert resp.status_code == 201
        await until(lambda: canary.snapshot("flags").gray)
        assert canary.values("flags") == {"mode": "gray"}
        await asyncio.sleep(0.2)
        assert plain.values("flags") == {"mode": "one"}
        await alice.post("/api/v1/config/gray/test/default/flags/abort", {})
        await until(lambda: not canary.snapshot("flags").gray)
        assert canary.values("flags") == {"mode": "one"}
    finally:
        await canary.stop()
        await plain.stop()


async def test_no_server_and_no_cache_starts_empty(tmp_path: Path) -> None:
    dead = httpx.MockTransport(lambda r: (_ for _ in ()).throw(httpx.ConnectError("down")))
    client = make_client(dead, tmp_path)
    await client.start()
    try:
        assert client.snapshot("flags").release == 0
        assert client.snapshot("flags").source == "none"
        assert client.values("flags") == {}
    finally:
        await client.stop()


async def test_an_unreadable_cache_is_ignored(tmp_path: Path) -> None:
    dead = httpx.MockTransport(lambda r: (_ for _ in ()).throw(httpx.ConnectError("down")))
    client = make_client(dead, tmp_path)
    client.cache_path("flags").parent.mkdir(parents=True)
    client.cache_path("flags").write_text("{half a fi")
    await client.start()
    try:
        assert client.snapshot("flags").source == "none"
    finally:
        await client.stop()


async def test_a_malformed_answer_is_not_applied(tmp_path: Path) -> None:
    garbage = httpx.MockTransport(lambda r: httpx.Response(200, content=b'{"changes": [{}]}'))
    client = make_client(garbage, tmp_path)
    await client.start()
    try:
        assert client.snapshot("flags").release == 0
        assert client.connected is False
    finally:
        await client.stop()
