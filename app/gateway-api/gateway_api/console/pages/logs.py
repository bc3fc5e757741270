"""Logs: sv-log's records by trace id, service, level or text, a page at a time, and a
live tail: the newest records since the tail opened, polled by htmx every few seconds,
at most ``TAIL_ROWS`` rows per answer and for at most ``TAIL_SECONDS`` (then the answer
is 286, which stops htmx's polling; the viewer can start again)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from gateway_api.console.deps import ViewerDep
from gateway_api.console.fetching import Fetched, fetched
from gateway_api.console.rendering import render

router = APIRouter()

#: Records per page of a query, rows of the tail, seconds a tail polls, poll period.
PAGE_SIZE = 50
TAIL_ROWS = 50
TAIL_SECONDS = 300
TAIL_EVERY = 2
#: htmx stops polling on this status.
STOP_POLLING = 286
TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
Level = Literal["", "trace", "debug", "info", "warning", "error", "critical"]
Text = Annotated[str, Query(max_length=200)]
Word = Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$")]


def _filters(trace_id: str, service: str, level: str, q: str) -> tuple[dict[str, Any], str]:
    """The query's parameters for sv-log, and what is wrong with the input (if anything)."""
    trace = trace_id.strip()
    if trace and not TRACE_ID.match(trace):
        return {}, "A trace id is 32 hexadecimal digits (the traceparent's second part)."
    params = {
        "trace_id": trace.lower() or None,
        "service": service or None,
        "level": level or None,
        "q": q.strip() or None,
    }
    return params, ""


@router.get("/logs", response_class=HTMLResponse, name="page-logs")
async def logs(
    request: Request,
    viewer: ViewerDep,
    trace_id: Annotated[str, Query(max_length=64)] = "",
    service: Word = "",
    level: Level = "",
    q: Text = "",
    cursor: Annotated[str, Query(max_length=512)] = "",
) -> Response:
    """Records matching the filters, newest first, one page at a time."""
    params, problem = _filters(trace_id, service, level, q)
    found: Fetched[Any] = Fetched(error=problem, status=422) if problem else Fetched()
    if not problem:
        found = await fetched(
            viewer.api.get("/api/v1/logs/records", **params, limit=PAGE_SIZE, cursor=cursor or None)
        )
    keep: dict[str, Any] = {"trace_id": trace_id, "service": service, "level": level, "q": q}
    return render(
        request,
        "pages/logs/index.html",
        found=found,
        cursor=cursor,
        keep={k: v for k, v in keep.items() if v},
        **keep,
    )


@router.get("/logs/live", response_class=HTMLResponse, name="page-logs-live")
async def live(
    request: Request, viewer: ViewerDep, service: Word = "", level: Level = "", q: Text = ""
) -> Response:
    """The live tail's page; its table is filled by polling ``/logs/tail``."""
    keep: dict[str, Any] = {"service": service, "level": level, "q": q}
    return render(
        request, "pages/logs/live.html", keep={k: v for k, v in keep.items() if v}, **keep
    )


@router.get("/logs/tail", response_class=HTMLResponse, name="logs-tail")
async def tail(
    request: Request,
    viewer: ViewerDep,
    service: Word = "",
    level: Level = "",
    q: Text = "",
    since: Annotated[str, Query(max_length=40)] = "",
    started: Annotated[float, Query(ge=0)] = 0.0,
) -> Response:
    """One poll of the live tail: the newest records since the tail opened."""
    now = time.time()
    if not since or not started:
        since, started = datetime.now(UTC).isoformat(timespec="milliseconds"), now
    params, _ = _filters("", service, level, q)
    found = await fetched(
        viewer.api.get("/api/v1/logs/records", **params, since=since, limit=TAIL_ROWS)
    )
    over = now - started >= TAIL_SECONDS
    keep = {"service": service, "level": level, "q": q}
    poll = urlencode({**{k: v for k, v in keep.items() if v}, "since": since, "started": started})
    return render(
        request,
        "pages/logs/tail.html",
        STOP_POLLING if over else 200,
        found=found,
        over=over,
        since=since,
        poll=poll,
        every=TAIL_EVERY,
        keep=keep,
        minutes=TAIL_SECONDS // 60,
    )
