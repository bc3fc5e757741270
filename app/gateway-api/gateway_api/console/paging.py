"""Paging and search for the console's lists, done on the server.

Where the platform's API pages a list itself, a page passes its ``offset``/``limit``
on and builds a :class:`Page` from the answer (:meth:`Page.of_window`). Where it
answers a whole list (a route table, a tenant's apps), :func:`paginate` searches and
cuts it here, so the browser never gets more than one page of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Generic, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, Query

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass
class Page(Generic[T]):
    """One page of a list: its rows, where it starts, and the search that made it."""

    items: Sequence[T]
    total: int
    offset: int
    limit: int
    q: str = ""
    #: Other query parameters the page's links keep (filters).
    keep: dict[str, str] = field(default_factory=dict)

    @property
    def first_shown(self) -> int:
        return self.offset + 1 if self.items else 0

    @property
    def last_shown(self) -> int:
        return self.offset + len(self.items)

    @property
    def has_previous(self) -> bool:
        return self.offset > 0

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.items) < self.total

    @property
    def previous_offset(self) -> int:
        return max(0, self.offset - self.limit)

    @property
    def next_offset(self) -> int:
        return self.offset + self.limit

    def query(self, offset: int) -> str:
        """The query string of this list at ``offset`` (search and filters kept)."""
        params = {**self.keep, "offset": str(offset), "limit": str(self.limit)}
        if self.q:
            params["q"] = self.q
        return urlencode(params)

    @classmethod
    def of_window(
        cls, items: Sequence[T], total: int, window: Window, keep: dict[str, str] | None = None
    ) -> Page[T]:
        """A page the platform already cut (its ``total`` as it reported it)."""
        return cls(items, total, window.offset, window.limit, window.q, keep or {})


@dataclass(frozen=True)
class Window:
    """The ``q``, ``offset`` and ``limit`` of a list request (bounded)."""

    q: str = ""
    offset: int = 0
    limit: int = DEFAULT_LIMIT


def window(
    q: str = Query("", max_length=200),
    offset: int = Query(0, ge=0, le=10_000_000),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
) -> Window:
    """A FastAPI dependency: ``Annotated[Window, Depends(window)]``."""
    return Window(q.strip(), offset, limit)


def paginate(
    rows: Iterable[T],
    win: Window,
    text: Callable[[T], str],
    keep: dict[str, str] | None = None,
) -> Page[T]:
    """Rows whose ``text`` contains the search (case-insensitive), one page of them."""
    needle = win.q.lower()
    matched = [row for row in rows if not needle or needle in text(row).lower()]
    return Page(
        matched[win.offset : win.offset + win.limit],
        len(matched),
        win.offset,
        win.limit,
        win.q,
        keep or {},
    )


WindowDep = Annotated[Window, Depends(window)]
