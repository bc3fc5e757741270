"""The gateway's hot path compiled with mypyc, used only while it matches the source.

``tools/native_build.py`` (run by ``make``) compiles :data:`MODULES` with mypyc into
``app/gateway-api/.native/`` (or ``GATEWAY_NATIVE_DIR``) and writes a manifest with the
SHA-256 of every compiled source file and the interpreter it was built for. At import,
``gateway_api/__init__.py`` calls :func:`activate`: when the manifest matches the
source files next to this one, the compiled directory is put first on the package's
search path, so ``gateway_api.transport.server`` and the others load as C extensions; otherwise
(no build, an edited source, another Python, ``GATEWAY_NATIVE=0``) the gateway runs
the same code as plain Python. A stale build is never used: behaviour is the
source's either way, only the cost differs (doc/performance.md).

This module itself is never compiled.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys
from pathlib import Path

#: The per-request path: the server, the proxy and forwarding core, and what they call
#: on every request. authz stays Python (its role manager subclasses Casbin's).
#: Dotted names below ``gateway_api``.
MODULES = (
    "accesslog",
    "forwarding",
    "gateway",
    "metrics",
    "proxy",
    "tracecontext",
    "routing.table",
    "security.authn",
    "security.quota_store",
    "security.quotas",
    "security.ratelimit",
    "security.sessions",
    "security.signing",
    "stats",
    "transport.http_client",
    "transport.server",
    "upstreams.balancing",
    "upstreams.pools",
    "upstreams.regions",
)
#: The mypyc runtime shared by the compiled modules: a top-level extension module.
GROUP = "gateway_api_native"
PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST = "manifest.json"

#: Why the compiled modules are (or are not) in use; set by :func:`activate`.
status = "not checked"
#: True once :func:`activate` put a current build in use.
active = False


def source_path(name: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """The source file of the dotted module ``name`` (``transport.server``)."""
    return package_dir.joinpath(*name.split(".")).with_suffix(".py")


def packages() -> list[str]:
    """``gateway_api`` and every subpackage that holds a compiled module, parents first."""
    found = {"gateway_api"}
    for name in MODULES:
        parts = name.split(".")[:-1]
        found.update("gateway_api." + ".".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(found, key=lambda p: (p.count("."), p))


def build_dir() -> Path:
    configured = os.environ.get("GATEWAY_NATIVE_DIR")
    return Path(configured) if configured else PACKAGE_DIR.parent / ".native"


def interpreter() -> str:
    """What an extension module is built for: implementation, version, platform."""
    return f"{sys.implementation.cache_tag}-{sys.platform}-{sys.maxsize.bit_length() + 1}"


def source_hashes(package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    return {
        name: hashlib.sha256(source_path(name, package_dir).read_bytes()).hexdigest()
        for name in MODULES
    }


def write_manifest(directory: Path) -> None:
    manifest = {"interpreter": interpreter(), "modules": source_hashes()}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def check(directory: Path) -> str | None:
    """None when ``directory`` holds a build of exactly the current sources, else why not."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        return "no compiled build (make builds one)"
    except (OSError, ValueError) as exc:
        return f"unreadable manifest: {exc}"
    if manifest.get("interpreter") != interpreter():
        return f"built for {manifest.get('interpreter')}, running {interpreter()}"
    if manifest.get("modules") != source_hashes():
        return "the sources changed since the build (make rebuilds it)"
    return None


def activate() -> bool:
    """Put a current compiled build first on the packages' search paths; True when it
    is in use. Call it before importing any gateway module but this one (the package
    ``__init__`` files import nothing); a second call changes nothing."""
    global status, active
    if active:
        return True
    if os.environ.get("GATEWAY_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        status = "disabled by GATEWAY_NATIVE"
        return False
    directory = build_dir()
    why_not = check(directory)
    if why_not is not None:
        status = why_not
        return False
    if any(f"gateway_api.{m}" in sys.modules for m in MODULES):
        status = "source modules were imported first"
        return False
    for name in packages():
        package = importlib.import_module(name)
        package.__path__.insert(0, str(directory.joinpath(*name.split("."))))
    if str(directory) not in sys.path:
        sys.path.append(str(directory))  # the shared runtime, GROUP + "__mypyc"
    status = f"compiled ({directory})"
    active = True
    return True
