from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.libs.discovery.etcd_server import EtcdServer


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A fresh etcd for one test, stopped by PID afterwards."""
    server = EtcdServer(tmp_path / "etcd")
    server.start()
    yield server
    server.stop()
