"""edgectl's discovery side: the local etcd `EDGE_DISCOVERY=etcd make up` starts, and
`edgectl status`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from edgectl.discovery import LocalEtcd, status_lines
from edgelib.discovery import Member, Registrar
from tests.libs.discovery.etcd_server import EtcdServer
from tests.worker import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")


async def test_edgectl_starts_an_etcd_when_none_answers_and_lists_it(tmp_path: Path) -> None:
    port = free_port()
    free_port()  # the peer port (client port + 1) stays unused by others
    url = f"http://127.0.0.1:{port}"
    local = await _in_thread(LocalEtcd.ensure, tmp_path / "var", url)
    try:
        assert local.process is not None
        assert (tmp_path / "var" / "run" / "etcd.pid").read_text() == str(local.process.pid)
        member = Member("sv-user", "east", "sv-user-east-7201", "http://127.0.0.1:7201")
        registrar = Registrar(url, member, ttl=10)
        await registrar.start()
        code, lines = await _in_thread(status_lines, url, "/edge/services")
        await registrar.stop()
        assert code == 0
        assert lines[0] == f"discovery: etcd at {url}, prefix /edge/services: 1 registered"
        assert lines[1].split() == [
            "SERVICE", "REGION", "INSTANCE", "URL", "WEIGHT", "ZONE", "VERSION", "TTL"
        ]  # fmt: skip
        row = lines[2].split()
        assert row[:7] == ["sv-user", "east", "sv-user-east-7201", member.url, "1", "-", "-"]
        assert row[7] in ("9s", "10s")
    finally:
        pid = local.process.pid if local.process else None
        local.stop()
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (tmp_path / "var" / "run" / "etcd.pid").exists()


async def test_edgectl_uses_an_etcd_that_already_answers(etcd: EtcdServer, tmp_path: Path) -> None:
    local = await _in_thread(LocalEtcd.ensure, tmp_path / "var", etcd.url)
    assert local.process is None  # not ours: never stopped by edgectl
    local.stop()
    assert etcd.healthy()


def test_edgectl_status_says_when_etcd_does_not_answer(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "EDGE_VAR_DIR": str(tmp_path), "EDGE_ETCD_URL": url}
    env.pop("EDGE_DISCOVERY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "edgectl", "status"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0  # static discovery: nothing is expected there
    assert "stack: not running" in proc.stdout
    assert f"discovery: static; etcd at {url} does not answer" in proc.stdout
    env["EDGE_DISCOVERY"] = "etcd"
    proc = subprocess.run(
        [sys.executable, "-m", "edgectl", "status"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1


async def _in_thread(func: Callable[..., T], *args: object) -> T:
    """edgectl's synchronous helpers run their own event loops: keep them off this one."""
    return await asyncio.to_thread(func, *args)
