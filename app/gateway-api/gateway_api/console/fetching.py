"""Reading the platform for a page: a failed call becomes a message on the page.

A page shows several things at once (a user's entry, their sessions, their roles); one
of them failing (403 for a permission the viewer lacks, 503 from a service) should not
take the others with it. :func:`fetched` turns a :class:`PlatformError` into the text
the page shows where that part would be. An ended session still goes to sign-in.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from gateway_api.console.client import PlatformError, SessionEnded
from gateway_api.console.sessions import ConsoleSession

T = TypeVar("T")


@dataclass(frozen=True)
class Fetched(Generic[T]):
    """What one call gave: ``data``, or ``error`` (the message to show) and ``status``."""

    data: T | None = None
    error: str = ""
    status: int = 200

    @property
    def ok(self) -> bool:
        return not self.error


async def fetched(call: Awaitable[T]) -> Fetched[T]:
    """The call's answer, or its error as a message (an ended session is raised)."""
    try:
        return Fetched(await call)
    except SessionEnded:
        raise
    except PlatformError as exc:
        return Fetched(error=exc.message, status=exc.status)


async def changed(session: ConsoleSession, call: Awaitable[Any], done: str) -> bool:
    """Make a change: flash ``done``, or why it was not done (an ended session is raised)."""
    try:
        await call
    except SessionEnded:
        raise
    except PlatformError as exc:
        session.flash("error", f"Not done: {exc.message}")
        return False
    session.flash("ok", done)
    return True
