"""The code generated from protos/ is what ``make protos`` makes now (tools/protos.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_generated_grpc_code_is_current() -> None:
    done = subprocess.run(
        [sys.executable, "tools/protos.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
