"""Watchers: the long poll answers within a second of a release, on every sv-config instance."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn

from sv_config.config import Settings
from tests.conftest import PG_URL, REDIS_URL
from tests.helpers import running
from tests.sv_config.conftest import Caller, config_app, drop_schema, watch
from tests.sv_config.test_namespaces import problem
from tests.worker import free_port


async def first_release(alice: Caller) -> int:
    await alice.namespace("flags")
    await alice.set("flags", "mode", "a")
    await alice.publish("flags")
    resp = await watch(alice.client, [{"name": "flags"}])
    return int(resp.json()["changes"][0]["release_id"])


async def test_a_waiting_watch_answers_right_after_a_publish(alice: Caller) -> None:
    known = await first_release(alice)
    poll = asyncio.create_task(watch(alice.client, [{"name": "flags", "known": known}], wait=10))
    await asyncio.sleep(0.2)
    assert not poll.done()
    await alice.set("flags", "mode", "b")
    started = time.monotonic()
    await alice.publish("flags")
    resp = await poll
    elapsed = time.monotonic() - started
    assert resp.status_code == 200
    assert resp.json()["changes"][0]["values"] == {"mode": "b"}
    assert elapsed < 1.0


async def test_a_watch_with_nothing_new_answers_304_after_its_wait(alice: Caller) -> None:
    known = await first_release(alice)
    started = time.monotonic()
    resp = await watch(alice.client, [{"name": "flags", "known": known}], wait=0.3)
    assert resp.status_code == 304
    assert 0.3 <= time.monotonic() - started < 2.0
    # A draft edit is not a release: watchers are not told.
    poll = asyncio.create_task(watch(alice.client, [{"name": "flags", "known": known}], wait=0.5))
    await alice.set("flags", "mode", "draft only")
    assert (await poll).status_code == 304


async def test_a_gray_release_wakes_only_its_targets(alice: Caller) -> None:
    known = await first_release(alice)
    polls = {
        name: asyncio.create_task(
            watch(alice.client, [{"name": "flags", "known": known}], instance=name, wait=1.5)
        )
        for name in ("svc-a", "svc-b")
    }
    await asyncio.sleep(0.2)
    await alice.set("flags", "mode", "gray")
    await alice.post(
        "/api/v1/config/gray/test/default/flags", {"targets": {"instances": ["svc-a"]}}
    )
    a = await polls["svc-a"]
    assert a.status_code == 200
    assert a.json()["changes"][0]["gray"] is True
    assert (await polls["svc-b"]).status_code == 304


async def test_missing_namespace_and_cluster_fallback(alice: Caller) -> None:
    await first_release(alice)
    resp = await watch(
        alice.client, [{"name": "flags", "cluster": "east"}, {"name": "nope", "cluster": "east"}]
    )
    changes = {c["name"]: c for c in resp.json()["changes"]}
    assert changes["flags"]["resolved_cluster"] == "default"
    assert changes["flags"]["values"] == {"mode": "a"}
    assert "nope" not in changes  # release id 0, as the client said
    await alice.namespace("flags", cluster="east")
    await alice.set("flags", "mode", "east only", cluster="east")
    await alice.publish("flags", cluster="east")
    resp = await watch(alice.client, [{"name": "flags", "cluster": "east"}])
    assert resp.json()["changes"][0]["values"] == {"mode": "east only"}
    assert resp.json()["changes"][0]["resolved_cluster"] == "east"


async def test_the_watch_is_for_signed_services_only(alice: Caller) -> None:
    body = {"environment": "test", "client": {"instance": "x"}, "namespaces": [{"name": "f"}]}
    resp = await alice.client.post("/internal/config/watch", json=body)
    problem(resp, 401, "unauthorized")


@pytest.mark.parametrize(
    "body",
    [
        {"environment": "test", "client": {"instance": "x"}, "namespaces": []},
        {"environment": "qa", "client": {"instance": "x"}, "namespaces": [{"name": "f"}]},
        {"environment": "test", "client": {"instance": "x"}, "namespaces": [{"name": "F!"}]},
        {"environment": "test", "client": {}, "namespaces": [{"name": "f"}]},
        {
            "environment": "test",
            "client": {"instance": "x"},
            "namespaces": [{"name": "f", "known": 2**40}],
        },
    ],
)
async def test_bad_watch_requests_are_422(alice: Caller, body: dict) -> None:  # type: ignore[type-arg]
    from tests.sv_config.conftest import SERVICE

    raw = orjson.dumps(body)
    headers = {
        "content-type": "application/json",
        **SERVICE.sign("POST", "/internal/config/watch", raw),
    }
    resp = await alice.client.post("/internal/config/watch", content=raw, headers=headers)
    problem(resp, 422, "validation-error")


@pytest.mark.integration
async def test_a_publish_on_one_instance_wakes_watchers_of_another_through_redis(
    tmp_path: Path,
) -> None:
    """Two sv-config instances on one PostgreSQL schema and one Redis."""
    first = Settings(
        var_dir=tmp_path,
        database_url=PG_URL,
        database_schema=f"t_watch_{uuid.uuid4().hex[:12]}",
        redis_url=REDIS_URL,
        watch_fallback_interval=60,  # so only pub/sub can be what wakes the watcher
        instance_id="sv-config-1",
    )
    second = first.model_copy(update={"instance_id": "sv-config-2"})
    try:
        async with running(config_app(first)) as one, running(config_app(second)) as two:
            alice = Caller(one)
            known = await first_release(alice)
            poll = asyncio.create_task(watch(two, [{"name": "flags", "known": known}], wait=10))
            await asyncio.sleep(0.3)
            await alice.set("flags", "mode", "b")
            started = time.monotonic()
            await alice.publish("flags")
            resp = await poll
            elapsed = time.monotonic() - started
            assert resp.status_code == 200
            assert resp.json()["changes"][0]["values"] == {"mode": "b"}
            assert elapsed < 1.0
    finally:
        await drop_schema(first)


async def test_without_pub_sub_the_fallback_scan_still_wakes_watchers(tmp_path: Path) -> None:
    """Two instances with separate in-process backends share one SQLite file."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'config.db'}"
    first = Settings(var_dir=tmp_path, database_url=url, watch_fallback_interval=0.3)
    second = first.model_copy(update={"instance_id": "sv-config-2"})
    async with running(config_app(first)) as one, running(config_app(second)) as two:
        alice = Caller(one)
        known = await first_release(alice)
        poll = asyncio.create_task(watch(two, [{"name": "flags", "known": known}], wait=10))
        await asyncio.sleep(0.2)
        await alice.set("flags", "mode", "b")
        started = time.monotonic()
        await alice.publish("flags")
        resp = await poll
        assert resp.status_code == 200
        assert time.monotonic() - started < 2.0


async def test_stopping_sv_config_ends_waiting_watches(config_settings: Settings) -> None:
    app = config_app(config_settings)
    async with running(app) as client:
        alice = Caller(client)
        known = await first_release(alice)
        poll = asyncio.create_task(watch(client, [{"name": "flags", "known": known}], wait=30))
        await asyncio.sleep(0.2)
        assert app.state.watch_hub.waiting == 1
        started = time.monotonic()
        await app.state.watch_hub.close()
        resp = await poll
        assert resp.status_code == 304
        assert time.monotonic() - started < 1.0


async def test_a_watcher_that_hangs_up_gives_its_slot_back(config_settings: Settings) -> None:
    app = config_app(config_settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            known = await first_release(Caller(client))
            poll = asyncio.create_task(watch(client, [{"name": "flags", "known": known}], wait=30))
            await asyncio.sleep(0.3)
            assert app.state.watch_hub.waiting == 1
            poll.cancel()  # closes the connection
            with contextlib.suppress(asyncio.CancelledError):
                await poll
        started = time.monotonic()
        while app.state.watch_hub.waiting:
            assert time.monotonic() - started < 2.0
            await asyncio.sleep(0.02)
    finally:
        server.should_exit = True
        await task
