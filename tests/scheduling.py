"""How pytest-xdist hands the tests to its workers: in whole units, the e2e ones first.

A unit is what one worker runs on its own: the tests on one e2e stack flavour (a worker
starts a stack for the tests it runs, so a flavour split over two workers would start
twice), or else one test file (its module-scoped processes start once, and the tests of
a file may build on one another). The e2e units go first, the two stacks before the
rest: they are the long ones, and begun last they would leave one worker busy while the
other has nothing left to do.

``--dist loadscope`` (pyproject.toml) with :class:`UnitScheduling` hands out the units.
xdist's own ``--dist loadgroup`` would do the same from ``xdist_group`` marks, but
pytest-xdist 3.8 cannot attach them to pytest 9.2's node ids and silently hands out
every test on its own (pytest-dev/pytest-xdist#1386). The workers know the units (they
collect); the controller, which schedules, does not: each worker writes its map of node
id to unit into a folder the controller names, read once every worker has collected.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

#: The worker input naming the folder the workers write their units to.
UNITS_DIR = "edge_units_dir"
_DIR = pytest.StashKey[Path]()


#: Fixtures giving a stack that tests of several files share (tests/e2e/conftest.py):
#: their tests are one unit.
SHARED_STACK_FIXTURES = ("observed_stack", "own_servers_stack")


#: The console's browser tests (tests/console) share one stack: one unit.
CONSOLE_TESTS = "tests/console/"


def work_unit(item: pytest.Item) -> str:
    if item.nodeid.startswith(CONSOLE_TESTS):
        return "e2e-console"
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "stack_flavour" in callspec.params:
        return f"e2e-stack-{callspec.params['stack_flavour']}"
    for fixture in SHARED_STACK_FIXTURES:
        if fixture in getattr(item, "fixturenames", ()):
            return f"e2e-shared-{fixture}"
    return item.nodeid.split("::", 1)[0]


def _rank(item: pytest.Item) -> int:
    if work_unit(item).startswith("e2e-stack-"):
        return 0
    return 1 if item.get_closest_marker("e2e") is not None else 2


def units_dir(config: pytest.Config) -> Path:
    """The controller's folder for the workers' unit maps (made on first use)."""
    if _DIR not in config.stash:
        config.stash[_DIR] = Path(tempfile.mkdtemp(prefix="edge-xdist-units-"))
    return config.stash[_DIR]


def remove_units_dir(config: pytest.Config) -> None:
    if _DIR in config.stash:
        shutil.rmtree(config.stash[_DIR], ignore_errors=True)
        del config.stash[_DIR]


def prepare_worker(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker: put the e2e tests first, and tell the controller the units."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is None or UNITS_DIR not in workerinput:
        return
    # The stacks first: with one per worker, both start at once, before any test runs
    # (13 processes starting take both CPUs for a while: a test timing a restart on the
    # other worker would not get its share). Stable, so pytest's own order inside each
    # part (one stack flavour after the other, a module's set-ups in turn) is kept.
    items.sort(key=_rank)
    path = Path(workerinput[UNITS_DIR]) / f"{workerinput['workerid']}.json"
    part = path.with_suffix(".part")
    part.write_text(json.dumps({item.nodeid: work_unit(item) for item in items}))
    part.replace(path)


class UnitScheduling(LoadScopeScheduling):
    """``loadscope`` scheduling whose scopes are the units the workers wrote down."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self._units: dict[str, str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        # Called once the collections are complete, so every worker has written its map.
        if self._units is None:
            self._units = {}
            for path in sorted(units_dir(self.config).glob("*.json")):
                self._units.update(json.loads(path.read_text()))
        try:
            return self._units[nodeid]
        except KeyError:
            raise RuntimeError(f"no work unit known for {nodeid}") from None
