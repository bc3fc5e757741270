"""A real auth-rbac for tests that start only part of the platform.

Every service checks its own admin endpoints' permissions at auth-rbac
(``edgelib.permissions``), so a test that starts, say, sv-notice alone and calls its
admin API as an operator also starts auth-rbac and grants that operator a role, as
auth-jwt does for the bootstrap admin.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.sv_config.processes import Process, auth_rbac_process, grant


@contextmanager
def policy_server(var_dir: Path, admins: tuple[str, ...] = ()) -> Iterator[Process]:
    """auth-rbac on SQLite, started, with ``admins`` holding the ``admin`` role."""
    var_dir.mkdir(parents=True, exist_ok=True)
    rbac = auth_rbac_process(var_dir)
    rbac.start()
    try:
        for user_id in admins:
            grant(rbac, user_id)
        yield rbac
    finally:
        rbac.stop()
