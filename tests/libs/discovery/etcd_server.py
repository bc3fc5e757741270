"""A real etcd for the discovery tests: its own process, ports and data directory.

``make test`` installs etcd (Debian's ``etcd-server``) when it is missing
(tools/ci/ensure-services.sh). Each server here listens on two ports of this pytest
process's block (tests/worker.py), keeps its data in a temporary directory, and is
stopped (or killed) by its PID. A restart keeps the data, so revisions carry on.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.worker import free_port


def etcd_binary() -> str:
    path = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
    if path is None:
        pytest.fail("etcd is needed (make test installs Debian's etcd-server)")
    return path


class EtcdServer:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"etcd-{self.client_port}.log"

    def start(self, timeout: float = 20.0) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        binary = etcd_binary()  # before the log is open: a missing etcd leaks no file
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                binary,
                "--name=edge-test",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={self.url}",
                f"--advertise-client-urls={self.url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=edge-test={peer}",
                "--log-level=error",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "ETCD_UNSUPPORTED_ARCH": ""},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"etcd exited with {self.process.returncode}: {self.log()}")
            if self.healthy():
                return
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"etcd did not answer within {timeout}s: {self.log()}")

    def healthy(self) -> bool:
        request = urllib.request.Request(f"{self.url}/v3/maintenance/status", b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=0.5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, sig)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return ""
