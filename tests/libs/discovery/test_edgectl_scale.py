"""``edgectl scale``: the supervisor starts and stops local instances of a running stack.

Real processes: an etcd, one service instance (``tests.libs.discovery.slow_service``, the
platform's app factory and runner) supervised by edgectl's :class:`Stack`, its control
socket, and the command line talking to it. Scaled instances register in etcd (so the
gateway sees them) and, when scaled down, deregister before they exit.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from edgectl.__main__ import main
from edgectl.processes import ProcessSpec
from edgectl.scale import serve_control, socket_path
from edgectl.supervisor import Stack, Supervised, wait_ready
from tests.libs.discovery.etcd_server import EtcdServer
from tests.libs.discovery.helpers import wait_until
from tests.worker import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[3]


def slow_spec(port: int, var: Path, region: str = "east") -> ProcessSpec:
    return ProcessSpec(
        name=f"sv-slow-{region}-{port}",
        service="sv-slow",
        region=region,
        port=port,
        ready_url=f"http://127.0.0.1:{port}/readyz",
        argv=[sys.executable, "-m", "tests.libs.discovery.slow_service"],
        env={
            "SLOW_PORT": str(port),
            "SLOW_HOST": "127.0.0.1",
            "SLOW_REGION": region,
            "SLOW_INSTANCE_ID": f"sv-slow-{region}-{port}",
            "EDGE_VAR_DIR": str(var),
        },
        prefix="SLOW_",
    )


def registered(etcd: EtcdServer) -> set[str]:
    """The sv-slow/east instance ids in etcd."""
    key = b"/edge/services/sv-slow/east/"
    body = {
        "key": base64.b64encode(key).decode(),
        "range_end": base64.b64encode(key[:-1] + b"0").decode(),
        "keys_only": True,
    }
    found = httpx.post(f"{etcd.url}/v3/kv/range", content=orjson.dumps(body), timeout=2).json()
    return {base64.b64decode(kv["key"]).decode().rsplit("/", 1)[1] for kv in found.get("kvs", [])}


async def edgectl(*argv: str) -> int:
    def run() -> int:
        try:
            main(list(argv))
        except SystemExit as exit_:
            return int(exit_.code or 0)
        return 0

    return await asyncio.get_running_loop().run_in_executor(None, run)


async def test_scale_up_and_down_a_running_service(
    etcd: EtcdServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {
        "EDGE_DISCOVERY": "etcd",
        "EDGE_ETCD_URL": etcd.url,
        "EDGE_DISCOVERY_TTL": "5",
        "EDGE_DISCOVERY_DRAIN_DELAY": "0.2",
        "EDGE_LOG_URL": "",
        "PYTHONPATH": str(ROOT),
    }.items():
        monkeypatch.setenv(name, value)
    var = tmp_path / "var"
    (var / "log").mkdir(parents=True)
    (var / "run").mkdir()
    first = Supervised(slow_spec(free_port(), var), var / "log", var / "run")
    # The stack's last child is its gateway (stopped first); never started here.
    gateway = Supervised(slow_spec(free_port(), var, "west"), var / "log", var / "run")
    stack = Stack([first, gateway], var / "log", var / "run")
    stack.start(first)
    control = None
    try:
        assert await wait_ready([first.spec], 120) == []
        control = await serve_control(socket_path(var), stack.scale)
        await wait_until(lambda: registered(etcd) == {first.spec.name}, 10, "first registered")
        base = ["--var-dir", str(var), "scale", "sv-slow", "--region", "east"]

        # Up to 3: two more processes, ready and registered, before the command returns.
        assert await edgectl(*base, "--instances", "3") == 0
        out = capsys.readouterr().out
        added = [line.split()[1] for line in out.splitlines() if line.startswith("started ")]
        assert len(added) == 2, out
        names = {first.spec.name, *added}
        assert {c.spec.name for c in stack.children[:-1]} == names
        assert stack.children[-1] is gateway  # still last: stopped first
        for child in stack.children[:-1]:
            assert httpx.get(child.spec.ready_url, timeout=5).status_code == 200
        await wait_until(lambda: registered(etcd) == names, 10, "the new instances registered")

        # Back to 1: the added ones stop (newest first), deregistering as they go.
        processes = [c.process for c in stack.children if c.spec.name in added]
        assert await edgectl(*base, "--instances", "1") == 0
        out = capsys.readouterr().out
        assert sorted(line.split()[1] for line in out.splitlines() if "stopped" in line) == sorted(
            added
        )
        assert registered(etcd) == {first.spec.name}
        assert all(p is not None and p.returncode is not None for p in processes)
        assert [c.spec.name for c in stack.children] == [first.spec.name, gateway.spec.name]

        # Refusals, with a message and exit 1.
        assert await edgectl(*base, "--instances", "0") == 1
        assert "instances must be 1 to 16" in capsys.readouterr().err
        assert await edgectl("--var-dir", str(var), "scale", "sv-nope", "--instances", "2") == 1
        assert "no sv-nope instance (global)" in capsys.readouterr().err
        monkeypatch.setenv("EDGE_DISCOVERY", "static")
        assert await edgectl(*base, "--instances", "2") == 1
        assert "EDGE_DISCOVERY=etcd" in capsys.readouterr().err
    finally:
        if control is not None:
            control.close()
        await asyncio.gather(*(c.stop() for c in stack.children))
        for task in stack.tasks:
            task.cancel()
        await asyncio.gather(*stack.tasks, return_exceptions=True)
    # No stack: a clear message.
    assert await edgectl("--var-dir", str(var), "scale", "sv-slow", "--instances", "2") == 1
    assert "no running stack" in capsys.readouterr().err
