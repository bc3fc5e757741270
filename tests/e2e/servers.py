"""A Redis and a PostgreSQL of a test's own, which it may stop and start again.

The shared servers (127.0.0.1:5432 and :6379) are never stopped: other tests, and other
sessions on this machine, use them. The outage and fuzzing stacks run on these instead.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.worker import free_port

PG_BIN = Path("/usr/lib/postgresql")


def _wait_for_port(port: int, up: bool, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            listening = sock.connect_ex(("127.0.0.1", port)) == 0
        if listening == up:
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} still {'closed' if up else 'open'} after {timeout} s")


class OwnRedis:
    """``redis-server`` on a free port of this worker's block; it keeps nothing on disk."""

    def __init__(self, base: Path) -> None:
        self.port = free_port()
        self.dir = base / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (tools/ci/ensure-services.sh)")
        self.proc = subprocess.Popen(
            [
                exe,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(self.port, up=True)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
            self.proc = None
        _wait_for_port(self.port, up=False)


def _pg_bindir() -> Path:
    versions = sorted(
        (p for p in PG_BIN.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise RuntimeError(
            "PostgreSQL's server binaries are not installed under /usr/lib/postgresql"
        )
    return versions[-1]


class OwnPostgres:
    """A throwaway PostgreSQL cluster (``initdb`` into a temp dir), trust auth on loopback.

    PostgreSQL refuses to run as root: there the cluster belongs to the ``postgres``
    account that Debian's server package creates, and its commands run as that account.
    """

    def __init__(self) -> None:
        self.port = free_port()
        while self.port < 1024:  # the postgres account may not bind a privileged port
            self.port = free_port()
        # Not under pytest's temp dirs: their root is 0700 (reset by every pytest run),
        # out of the postgres account's reach.
        self.dir = Path(tempfile.mkdtemp(prefix="edge-pg-"))
        self.data = self.dir / "data"
        self.bindir = _pg_bindir()
        self._user: str | None = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self._user is not None:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60, cwd=self.dir)

    def init(self) -> None:
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )

    def start(self) -> None:
        # fsync off: a test cluster; durability against a power cut is not what is tested.
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            "30",
            "start",
        )
        _wait_for_port(self.port, up=True)

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as in a failover or a crash."""
        if not (self.data / "postmaster.pid").exists():
            return
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        _wait_for_port(self.port, up=False)

    def remove(self) -> None:
        """Stop the cluster if it runs, and delete its files."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
