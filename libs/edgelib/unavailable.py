"""Which errors mean "a server this service needs is away", as opposed to a bug.

A dropped or refused PostgreSQL connection, a PostgreSQL shutting down or starting up,
an exhausted pool, or Redis not answering: the request may succeed in a moment, so the
caller gets 503 with ``Retry-After`` (:mod:`edgelib.problems`), never 500.
"""

from __future__ import annotations

import errno

import asyncpg.exceptions as pg
from sqlalchemy import exc as sa

from edgelib.backends.base import BackendError

# PostgreSQL's classes 08 (connection exception) and 57 (operator intervention: admin
# shutdown, crash shutdown, cannot connect now), and asyncpg's own "connection closed".
_PG_AWAY: tuple[type[BaseException], ...] = (
    pg.PostgresConnectionError,
    pg.OperatorInterventionError,
    pg.TooManyConnectionsError,
    pg.InterfaceError,
)
_AWAY: tuple[type[BaseException], ...] = (
    BackendError,
    ConnectionError,
    TimeoutError,
    sa.TimeoutError,
    *_PG_AWAY,
)


#: The error classes :func:`is_unavailable` may say yes to (and their bases), for handlers
#: registered by class: Starlette's catch-all ``Exception`` handler re-raises after
#: answering, and uvicorn then closes the connection, which the gateway may be reusing.
CANDIDATE_TYPES: tuple[type[Exception], ...] = (
    BackendError,
    OSError,
    sa.DBAPIError,
    sa.TimeoutError,
    pg.PostgresConnectionError,
    pg.OperatorInterventionError,
    pg.TooManyConnectionsError,
    pg.InterfaceError,
)

_NETWORK_ERRNOS = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.EADDRNOTAVAIL}
)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it wraps) is a dependency being away, not a bug."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _AWAY):
            return True
        if isinstance(current, sa.DBAPIError):
            if current.connection_invalidated:
                return True
            orig = current.orig
            if isinstance(orig, BaseException) and is_unavailable(orig):
                return True
        if isinstance(current, OSError) and current.errno in _NETWORK_ERRNOS:
            # A server unreachable, from a driver that does not wrap it (asyncpg's connect).
            return True
        # Only explicit wrapping (``raise ... from``): an error raised while handling an
        # outage is still a bug of its own.
        current = current.__cause__
    return False
