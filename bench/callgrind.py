"""Instructions counted by callgrind around a piece of a benchmark's own process.

The measuring script runs itself under ``valgrind --tool=callgrind --instr-atstart=no``
(:func:`count`); inside, :func:`instrument` switches counting on just before the
requests and off after them, so start-up, imports and set-up are not counted. Used by
``bench/gateway_instructions.py`` and ``bench/service.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path


def instrument(state: str) -> None:
    """Under :func:`count`: turn counting ``"on"`` or ``"off"`` for this process."""
    if os.environ.get("EDGE_CALLGRIND"):
        subprocess.run(
            ["callgrind_control", "--instr=" + state, str(os.getpid())],
            check=True, capture_output=True,
        )  # fmt: skip


def count(script: Path, args: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> int:
    """Instructions callgrind counted while ``script args`` had counting on."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: apt-get install valgrind")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        environ = {**env, "PYTHONHASHSEED": "0", "PYTHONMALLOC": "malloc", "EDGE_CALLGRIND": "1"}
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={out}", sys.executable, str(script), *args],
            capture_output=True, text=True, env=environ, cwd=cwd, check=False,
        )  # fmt: skip
        match = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or match is None:
            raise SystemExit(f"callgrind failed:\n{proc.stderr[-2000:]}")
        return int(match.group(1))
