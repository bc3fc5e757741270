"""Services never import one another; libs and edgectl never import a service.

"libs are imported, never run; apps are run, never imported." Each module under
``app/<service>/``, ``libs/`` and ``tools/edgectl/`` is parsed with :mod:`ast` and every
import it makes, including ``importlib.import_module("...")`` with a constant name, is
checked against the packages of the services.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def service_packages(root: Path) -> dict[str, str]:
    """Package -> service, for every package under app/ (registered or not)."""
    return {
        init.parent.name: init.parents[1].name
        for init in sorted(root.glob("app/*/*/__init__.py"))
        if "migrations" not in init.parts
    }


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level module) of every absolute import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value.split(".")[0]


def violations(root: Path) -> list[str]:
    """Every import across a boundary, as ``path:line: what``."""
    packages = service_packages(root)
    found = []

    def check(path: Path, allowed: str | None, owner: str) -> None:
        for line, module in imported(path):
            if module in packages and module != allowed:
                where = f"{path.relative_to(root)}:{line}"
                found.append(f"{where}: {owner} imports {packages[module]} ({module})")

    for package, service in packages.items():
        for path in sorted((root / "app" / service).rglob("*.py")):
            check(path, package, service)
    for path in sorted((root / "libs").rglob("*.py")):
        check(path, None, "libs")
        for line, module in imported(path):
            if module == "edgectl":
                found.append(f"{path.relative_to(root)}:{line}: libs imports edgectl")
    for path in sorted((root / "tools" / "edgectl").rglob("*.py")):
        check(path, None, "edgectl")
    return found


def test_services_libs_and_edgectl_import_no_service() -> None:
    assert len(service_packages(ROOT)) >= 9
    found = violations(ROOT)
    assert not found, "imports across a boundary:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("app/sv-a/sv_a/x.py", "from sv_b.config import Settings\n", "sv-a imports sv-b"),
        ("app/sv-a/sv_a/x.py", "import sv_b.main\n", "sv-a imports sv-b"),
        ("app/sv-a/sv_a/x.py", "def f():\n    import sv_b\n", "sv-a imports sv-b"),
        (
            "app/sv-a/sv_a/x.py",
            "import importlib\nimportlib.import_module('sv_b.config')\n",
            "sv-a imports sv-b",
        ),
        ("libs/edgelib/x.py", "from sv_a import main\n", "libs imports sv-a"),
        ("libs/edgelib/x.py", "import edgectl.registry\n", "libs imports edgectl"),
        ("tools/edgectl/x.py", "from sv_b.topology import load\n", "edgectl imports sv-b"),
    ],
)
def test_a_crossing_import_is_reported(
    tmp_path: Path, path: str, source: str, expected: str
) -> None:
    for package in ("app/sv-a/sv_a", "app/sv-b/sv_b", "libs/edgelib", "tools/edgectl"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / path).write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1
    assert found[0].startswith(path)
    assert expected in found[0]


def test_own_package_and_relative_imports_are_fine(tmp_path: Path) -> None:
    (tmp_path / "app/sv-a/sv_a").mkdir(parents=True)
    (tmp_path / "app/sv-a/sv_a/__init__.py").write_text("")
    (tmp_path / "app/sv-a/sv_a/x.py").write_text(
        "from sv_a.config import Settings\nfrom . import y\nimport edgelib\n"
    )
    (tmp_path / "libs").mkdir()
    (tmp_path / "tools/edgectl").mkdir(parents=True)
    assert violations(tmp_path) == []


#: What the kernel owns, as the line that defines it, and the one module allowed to.
KERNEL = {
    "SessionDep": (r"^SessionDep\s*=", "libs/edgelib/uow.py"),
    "Transactions": (r"^class Transactions\b", "libs/edgelib/uow.py"),
    "after_commit": (r"^def after_commit\b", "libs/edgelib/uow.py"),
    "PeerUnavailable": (r"^class PeerUnavailable\b", "libs/edgelib/peers.py"),
    "PeerProblem": (r"^class PeerProblem\b", "libs/edgelib/peers.py"),
    "the sv-region directory client": (
        r"^class (Directory|DirectoryClient)\b",
        "libs/edgelib/peers.py",
    ),
    "Backoff": (r"^class Backoff\b", "libs/edgelib/tasks.py"),
    "TaskSet": (r"^class TaskSet\b", "libs/edgelib/tasks.py"),
    "periodic (an interval loop)": (r"^async def periodic\b", "libs/edgelib/tasks.py"),
    "follow (subscribe and reconnect)": (r"^async def follow\b", "libs/edgelib/tasks.py"),
}


@pytest.mark.parametrize("name", sorted(KERNEL))
def test_what_the_kernel_owns_is_defined_once_in_edgelib(name: str) -> None:
    import re

    pattern, home = KERNEL[name]
    regex = re.compile(pattern, re.M)
    found = [
        str(path.relative_to(ROOT))
        for tree in ("app", "libs")
        for path in sorted((ROOT / tree).rglob("*.py"))
        if regex.search(path.read_text())
    ]
    assert found == [home]


#: Swallowing a task's cancellation: ``suppress(...CancelledError...)`` or an
#: ``except CancelledError`` whose body is ``pass``.
SWALLOWED_CANCEL = (
    r"suppress\([^)]*CancelledError",
    r"except\s*\(?[\w., ]*CancelledError[\w., ]*\)?\s*:\s*\n\s*pass\b",
)


def swallowed_cancellations(root: Path) -> list[str]:
    """``path:line`` of every place under app/ and libs/ that swallows a cancellation."""
    import re

    regexes = [re.compile(pattern) for pattern in SWALLOWED_CANCEL]
    found = []
    for tree in ("app", "libs"):
        for path in sorted((root / tree).rglob("*.py")):
            text = path.read_text()
            for regex in regexes:
                for match in regex.finditer(text):
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(f"{path.relative_to(root)}:{line}")
    return found


def test_cancel_and_await_lives_only_in_edgelib_tasks() -> None:
    """Stopping a task is ``edgelib.tasks.cancel`` / ``TaskSet.close``, never a local copy."""
    home = "libs/edgelib/tasks.py"
    assert [where for where in swallowed_cancellations(ROOT) if not where.startswith(home)] == []


@pytest.mark.parametrize(
    "source",
    [
        "with contextlib.suppress(asyncio.CancelledError):\n    await task\n",
        "with suppress(CancelledError, OSError):\n    await task\n",
        "try:\n    await task\nexcept asyncio.CancelledError:\n    pass\n",
    ],
)
def test_a_local_cancel_and_await_is_reported(tmp_path: Path, source: str) -> None:
    module = tmp_path / "libs" / "x" / "stop.py"
    module.parent.mkdir(parents=True)
    module.write_text(source)
    assert swallowed_cancellations(tmp_path) == [
        "libs/x/stop.py:1" if "with" in source else "libs/x/stop.py:3"
    ]


def test_a_cancellation_that_propagates_is_fine(tmp_path: Path) -> None:
    module = tmp_path / "app" / "svc" / "handler.py"
    module.parent.mkdir(parents=True)
    module.write_text(
        "try:\n    await work()\nexcept asyncio.CancelledError:\n    status = 499\n    raise\n"
    )
    assert swallowed_cancellations(tmp_path) == []


def _modules() -> list[str]:
    packages = [p.parent for p in sorted(ROOT.glob("app/*/*/__init__.py"))]
    packages.append(ROOT / "libs" / "edgelib")
    names = []
    for package in packages:
        for path in sorted(package.rglob("*.py")):
            parts = path.relative_to(package.parent).with_suffix("").parts
            if "migrations" in parts or parts[-1] == "__main__":
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_of_every_service_and_of_edgelib_imports() -> None:
    """An import of a name that moved fails here, not at a service's start.

    mypy runs with ``ignore_missing_imports`` (for untyped third parties), so it does not
    report an import of a module of ours that no longer exists.
    """
    import importlib

    failed = []
    for name in _modules():
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{name}: {exc!r}")
    assert not failed, "\n".join(failed)
