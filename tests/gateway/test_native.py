"""The compiled hot path (gateway_api.native): used when current, never when stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_api import native


def _child(env: dict[str, str]) -> str:
    """``status|server module file`` as a fresh interpreter sees them."""
    code = (
        "import gateway_api.native as n; n.activate();"
        "import gateway_api.transport.server as s;"
        "print(n.active, n.status, s.__file__, sep='|')"
    )
    full = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_NATIVE")}
    full.update(env)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full, check=True
    )
    return proc.stdout.strip()


def test_make_test_runs_the_compiled_modules() -> None:
    # `make test` builds it (--strict) before pytest, so there the suite tests what ships;
    # only a bare `pytest` outside CI, with no build, has nothing compiled to check.
    if native.check(native.build_dir()) is not None and not os.environ.get("CI"):
        pytest.skip(f"outside make test and CI, with no current build: {native.status}")
    assert native.active, native.status
    from gateway_api import proxy
    from gateway_api.transport import server
    from gateway_api.upstreams import balancing

    for module in (server, proxy, balancing):  # top level and subpackages alike
        assert str(module.__file__).endswith(".so"), module.__file__
    used, _, server_file = _child({}).split("|")
    assert (used, server_file.endswith(".so")) == ("True", True)


def test_manifest_names_what_is_wrong(tmp_path: Path) -> None:
    assert native.check(tmp_path) == "no compiled build (make builds one)"
    native.write_manifest(tmp_path)
    assert native.check(tmp_path) is None
    manifest = json.loads((tmp_path / native.MANIFEST).read_text())
    manifest["modules"]["transport.server"] = "0" * 64
    (tmp_path / native.MANIFEST).write_text(json.dumps(manifest))
    assert native.check(tmp_path) == "the sources changed since the build (make rebuilds it)"
    manifest = {"interpreter": "cpython-27-os2-32", "modules": native.source_hashes()}
    (tmp_path / native.MANIFEST).write_text(json.dumps(manifest))
    assert "built for cpython-27-os2-32" in (native.check(tmp_path) or "")


def test_a_stale_build_is_not_used(tmp_path: Path) -> None:
    native.write_manifest(tmp_path)
    manifest = json.loads((tmp_path / native.MANIFEST).read_text())
    manifest["modules"]["proxy"] = "0" * 64  # as if proxy.py was edited after the build
    (tmp_path / native.MANIFEST).write_text(json.dumps(manifest))

    used, status, server_file = _child({"GATEWAY_NATIVE_DIR": str(tmp_path)}).split("|")
    assert (used, server_file.endswith("server.py")) == ("False", True)
    assert "sources changed" in status


def test_gateway_native_0_runs_plain_python() -> None:
    used, status, server_file = _child({"GATEWAY_NATIVE": "0"}).split("|")
    assert used == "False"
    assert status == "disabled by GATEWAY_NATIVE"
    assert server_file.endswith("server.py")


def test_importing_the_package_has_no_side_effect() -> None:
    # Activation is the entry points' (python -m gateway_api, tests/conftest.py): a
    # plain import switches nothing, and the dotted names map to subpackage files.
    code = (
        "import gateway_api.native as n, gateway_api.config, gateway_api.transport.server as s;"
        "print(n.active, n.status, s.__file__, sep='|')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    used, status, server_file = proc.stdout.strip().split("|")
    assert (used, status) == ("False", "not checked")
    assert server_file.endswith("transport/server.py")
    assert native.source_path("transport.server").name == "server.py"
    assert "gateway_api.transport" in native.packages()
