"""Which namespaces a transaction changed, announced to watchers once it has committed.

Services mark a namespace on the session; the session dependency announces the marks
only after the commit succeeded, so a watcher woken by the announcement always reads
the new state.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

_KEY = "sv_config.changed"

#: (environment, namespace name): watchers wake per name, whatever the cluster.
ChangeKey = tuple[str, str]


def mark_changed(session: AsyncSession, environment: str, name: str) -> None:
    """Note that what watchers of ``environment``/``name`` receive has changed."""
    session.info.setdefault(_KEY, set()).add((environment, name))


def take_changes(session: AsyncSession) -> set[ChangeKey]:
    """The marks made in this session, removed from it."""
    changes: set[ChangeKey] = session.info.pop(_KEY, set())
    return changes
