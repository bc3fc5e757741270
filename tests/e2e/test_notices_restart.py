"""sv-notice killed with SIGKILL mid-delivery and started again loses no queued notice.

A real ``python -m sv_notice`` process delivers webhooks to a slow receiver; it is
killed while most deliveries are still queued, and started again with the same
instance id. Every notice must arrive (at least once: a webhook in flight when the
process died may come twice, with the same ``webhook-id`` for the receiver to drop).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from edgelib.identity import Identity
from sv_notice.config import Settings
from tests.conftest import PG_URL, REDIS_URL
from tests.policy_server import policy_server
from tests.sv_notice.conftest import ADMIN, SERVICE, cleanup, gateway_headers
from tests.worker import free_port

pytestmark = pytest.mark.e2e
measured = logging.getLogger("tests.measured")

ROOT = Path(__file__).parents[2]
NOTICES = 40


class SlowReceiver:
    """Records every POST (webhook-id, notice id), answering 200 after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: list[tuple[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.calls.append((request.headers["webhook-id"], body["notice"]["id"]))
        await asyncio.sleep(self.delay)
        return web.Response(text="ok")


@asynccontextmanager
async def receiving(receiver: SlowReceiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


class NoticeProcess:
    """``python -m sv_notice`` on its own port; same instance id on every start."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = int(env["SV_NOTICE_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, client: httpx.AsyncClient) -> float:
        started = time.monotonic()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sv_notice"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        while time.monotonic() - started < 60:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if (await client.get(self.url + "/readyz")).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("sv-notice did not become ready:\n" + self.log.read_text()[-3000:])

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _env(flavour: str, var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "SV_NOTICE_"))}
    env.update(
        {
            "EDGE_VAR_DIR": str(var_dir),
            "PYTHONUNBUFFERED": "1",
            "SV_NOTICE_PORT": str(free_port()),
            "SV_NOTICE_REGION": "east",
            "SV_NOTICE_INSTANCE_ID": "sv-notice-east-restart",
            "SV_NOTICE_WORKERS": "2",
            "SV_NOTICE_RETRY_BASE": "0.2",
            "SV_NOTICE_QUEUE_NAMESPACE": f"test:notice:{uuid.uuid4().hex[:10]}",
        }
    )
    if flavour == "postgres-redis":
        env["EDGE_DATABASE_URL"] = PG_URL
        env["SV_NOTICE_DATABASE_SCHEMA"] = f"t_{uuid.uuid4().hex[:12]}"
        env["SV_NOTICE_MIGRATE_ON_START"] = "true"
        env["EDGE_REDIS_URL"] = REDIS_URL
    return env


async def _call(
    client: httpx.AsyncClient, base: str, method: str, path: str, who: Identity, body: Any = None
) -> httpx.Response:
    headers = gateway_headers(method, path, who)
    return await client.request(method, base + path, json=body, headers=headers)


@pytest.mark.parametrize(
    "flavour", ["sqlite-memory", pytest.param("postgres-redis", marks=pytest.mark.integration)]
)
async def test_sigkill_mid_delivery_then_restart_loses_no_queued_notice(
    flavour: str, tmp_path: Path
) -> None:
    with policy_server(tmp_path / "rbac", admins=(ADMIN.user_id,)) as rbac:
        env = _env(flavour, tmp_path / "var") | {"EDGE_AUTH_RBAC_URL": rbac.url}
        await _deliver_across_a_kill(flavour, env, tmp_path)


async def _deliver_across_a_kill(flavour: str, env: dict[str, str], tmp_path: Path) -> None:
    service = NoticeProcess(env, tmp_path / "sv-notice.log")
    receiver = SlowReceiver(delay=0.2)
    user = Identity(str(uuid.uuid4()), "alice", "east", "s-1", "web")
    async with receiving(receiver) as hook, httpx.AsyncClient(timeout=10) as client:
        try:
            await service.start(client)
            base = service.url
            resp = await _call(
                client, base, "PUT", "/api/v1/notices/preferences/webhook", user, {"url": hook}
            )
            assert resp.status_code == 200, resp.text
            # One batch, one transaction: every notice is queued before the first delivery.
            events = [
                {
                    "id": f"restart-{user.user_id}-{i}",
                    "type": "general",
                    "user_id": user.user_id,
                    "region": "east",
                    "data": {"title": f"n{i}", "body": "restart test"},
                }
                for i in range(NOTICES)
            ]
            body = orjson.dumps({"events": events})
            signed = SERVICE.sign("POST", "/internal/events", body)
            resp = await client.post(
                base + "/internal/events",
                content=body,
                headers={"content-type": "application/json", **signed},
            )
            assert resp.status_code == 202, resp.text
            sent = [r["notice_id"] for r in resp.json()["results"]]
            assert len(set(sent)) == NOTICES
            while len(receiver.calls) < 4:
                await asyncio.sleep(0.02)
            service.kill()
            seen_before_kill = len({notice for _, notice in receiver.calls})
            assert seen_before_kill < NOTICES // 2, "the kill came too late to be mid-delivery"

            restart_seconds = await service.start(client)
            ready_at = time.monotonic()
            deadline = ready_at + 60
            while {n for _, n in receiver.calls} != set(sent):
                assert time.monotonic() < deadline, (
                    f"missing {len(set(sent) - {n for _, n in receiver.calls})} notices"
                )
                await asyncio.sleep(0.1)

            while True:  # the last answers may still be on their way back
                queued = await _call(
                    client,
                    base,
                    "GET",
                    f"/api/v1/notices/admin/deliveries?status=queued&user_id={user.user_id}",
                    ADMIN,
                )
                if not queued.json()["items"]:
                    break
                assert time.monotonic() < deadline, queued.json()
                await asyncio.sleep(0.1)

            # Every notice arrived; a repeat carries the same webhook-id as the first try.
            by_webhook_id: dict[str, set[str]] = {}
            for webhook_id, notice_id in receiver.calls:
                by_webhook_id.setdefault(webhook_id, set()).add(notice_id)
            assert len(by_webhook_id) == NOTICES
            assert all(len(ids) == 1 for ids in by_webhook_id.values())
            repeats = len(receiver.calls) - NOTICES
            # Shown with -o log_cli=true -o log_cli_level=INFO.
            measured.info(
                "%s: %d delivered before the kill; ready again in %.2f s; all sent %.2f s "
                "after that; %d webhooks repeated",
                flavour,
                seen_before_kill,
                restart_seconds,
                time.monotonic() - ready_at,
                repeats,
            )
            assert repeats <= 2  # at most the attempts in flight when the process died
            for notice_id in sent:
                status = await _call(
                    client, base, "GET", f"/api/v1/notices/admin/notices/{notice_id}", ADMIN
                )
                channels = {d["channel"]: d for d in status.json()["deliveries"]}
                assert channels["webhook"]["status"] == "sent", channels["webhook"]
                assert channels["realtime"]["status"] == "sent", channels["realtime"]
            inbox = await _call(client, base, "GET", "/api/v1/notices?limit=100", user)
            assert len(inbox.json()["items"]) == NOTICES
            assert restart_seconds < 60  # a cold Python start on a busy 2-core machine
        finally:
            await service.stop()
            await cleanup(
                Settings(
                    var_dir=tmp_path,
                    database_schema=env.get("SV_NOTICE_DATABASE_SCHEMA"),
                    redis_url=env.get("EDGE_REDIS_URL", "memory://"),
                    queue_namespace=env["SV_NOTICE_QUEUE_NAMESPACE"],
                )
            )
