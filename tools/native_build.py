"""Compile the gateway's per-request modules with mypyc (``make native``).

    python tools/native_build.py            # best effort: plain Python if it cannot build
    python tools/native_build.py --strict   # fail when it cannot (make test, CI)

The modules are :data:`gateway_api.native.MODULES`, dotted names below ``gateway_api``
(``transport.server``); the result goes to
``app/gateway-api/.native/`` (``GATEWAY_NATIVE_DIR`` to change it) with a manifest of
the sources it was built from, which the gateway checks before using it. The sources
are hashed before the build starts, so a file edited during the build leaves the build
stale (unused), never wrongly current. Needs a C compiler and the Python headers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "app" / "gateway-api" / "gateway_api"


def _native() -> ModuleType:
    if str(PACKAGE.parent) not in sys.path:
        sys.path.insert(0, str(PACKAGE.parent))
    from gateway_api import native

    return native


def _compile(work: Path) -> None:
    """In a child process: mypyc + setuptools, C in ``work/c``, modules in ``work/out``."""
    from mypyc.build import mypycify  # from the dev dependencies
    from setuptools import setup

    native = _native()
    paths = [str(native.source_path(name)) for name in native.MODULES]
    os.chdir(ROOT)  # mypy reads its settings from pyproject.toml here
    extensions = mypycify(paths, opt_level="3", group_name=native.GROUP, target_dir=str(work / "c"))
    os.chdir(work)  # setuptools must not treat the repository as the project to build
    setup(
        name="gateway-native",
        packages=[],
        py_modules=[],
        ext_modules=extensions,
        script_args=[
            "build_ext",
            "--build-lib",
            str(work / "out"),
            "--build-temp",
            str(work / "tmp"),
        ],
    )


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def missing_tools() -> str | None:
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    if shutil.which(compiler.split()[0]) is None:
        return f"no C compiler ({compiler})"
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.exists():
        return f"no Python headers ({include})"
    return None


def build(out: Path) -> str | None:
    """Build into ``out`` (replaced whole); None on success, else what went wrong."""
    native = _native()
    problem = missing_tools()
    if problem is not None:
        return problem
    hashes = native.source_hashes()
    with tempfile.TemporaryDirectory(prefix="gateway-native-") as tmp:
        work = Path(tmp)
        # mypyc's own cache in the build folder: the shared type-check cache
        # (MYPY_CACHE_DIR, Makefile) was made with other options.
        env = {k: v for k, v in os.environ.items() if k != "MYPY_CACHE_DIR"}
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(work)],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        if proc.returncode != 0:
            return "mypyc failed:\n" + (proc.stdout + proc.stderr)[-4000:]
        staged = out.with_name(out.name + ".new")
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(work / "out", staged)
    if native.source_hashes() != hashes:
        shutil.rmtree(staged, ignore_errors=True)
        return "the sources changed during the build; run it again"
    native.write_manifest(staged)
    shutil.rmtree(out, ignore_errors=True)
    staged.rename(out)
    return None


#: Builds kept per machine, by what they were built from (EDGE_NATIVE_CACHE=off: none).
CACHE_KEEP = 4


def cache_root() -> Path | None:
    configured = os.environ.get("EDGE_NATIVE_CACHE", "")
    if configured.lower() in {"off", "0", "false", "no"}:
        return None
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edge" / "gateway-native"


def cache_key() -> str:
    """What a build is made from: the interpreter, mypyc's version and every source
    mypyc reads (the compiled modules and the rest of the gateway package and edgelib,
    whose types it compiles against)."""
    from importlib.metadata import version

    native = _native()
    digest = hashlib.sha256()
    digest.update(json.dumps([native.interpreter(), version("mypy")]).encode())
    sources = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "libs" / "edgelib").rglob("*.py"))
    for path in [*sources, ROOT / "pyproject.toml", Path(__file__)]:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:32]


def restore(out: Path, key: str) -> bool:
    """Copy a cached build of exactly these sources into ``out``; False if there is none."""
    root = cache_root()
    if root is None or _native().check(root / key) is not None:
        return False
    staged = out.with_name(out.name + ".new")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(root / key, staged)
    shutil.rmtree(out, ignore_errors=True)
    staged.rename(out)
    return True


def remember(out: Path, key: str) -> None:
    """Keep the build for the next checkout of the same sources (best effort)."""
    root = cache_root()
    if root is None:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        staged = root / f"{key}.new"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(out, staged)
        shutil.rmtree(root / key, ignore_errors=True)
        staged.rename(root / key)
        kept = sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[CACHE_KEEP:]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        say(f"gateway native build: not cached ({exc})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strict", action="store_true", help="exit 1 when it cannot build")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _compile(args.child)
        return 0
    native = _native()
    out = native.build_dir()
    if native.check(out) is None:
        (out / native.MANIFEST).touch()  # for make: up to date
        say(f"gateway native build: current ({out})")
        return 0
    key = cache_key()
    if restore(out, key):
        say(f"gateway native build: restored a build of these sources from {cache_root()}")
        return 0
    say(
        f"gateway native build: compiling {len(native.MODULES)} modules with mypyc "
        "(about 90 s on a quiet machine; the gateway runs as Python without it)"
    )
    problem = build(out)
    if problem is None:
        remember(out, key)
        say(f"gateway native build: compiled {len(native.MODULES)} modules into {out}")
        return 0
    say(f"gateway native build: not built, the gateway runs as plain Python: {problem}")
    return 1 if args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
