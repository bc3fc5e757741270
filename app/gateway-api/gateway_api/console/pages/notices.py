"""Notices: sv-notice's dead letters (deliveries given up on, with the reason), paged by
sv-notice's cursor and filtered by channel, and replaying one (``notices:admin``).

sv-notice's admin API answers for the region the gateway routes the viewer to, their
home region (doc/services/sv-notice.md, "Not done yet")."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway_api.console.deps import ChangeDep, FormDep, ViewerDep
from gateway_api.console.fetching import changed, fetched
from gateway_api.console.rendering import render

router = APIRouter()

PAGE_SIZE = 50
Channel = Literal["", "in_app", "realtime", "email", "webhook"]
DeliveryId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


@router.get("/notices", response_class=HTMLResponse, name="page-notices")
async def notices(
    request: Request,
    viewer: ViewerDep,
    channel: Channel = "",
    cursor: Annotated[str, Query(max_length=512)] = "",
) -> Response:
    """Dead letters, most recently failed first, one page at a time."""
    found = await fetched(
        viewer.api.get(
            "/api/v1/notices/admin/dead-letters",
            channel=channel or None,
            cursor=cursor or None,
            limit=PAGE_SIZE,
        )
    )
    return render(request, "pages/notices.html", found=found, channel=channel, cursor=cursor)


@router.post("/notices/dead-letters/{delivery_id}/replay", name="notices-replay")
async def replay(
    request: Request, delivery_id: DeliveryId, viewer: ChangeDep, form: FormDep
) -> Response:
    """Queue a dead letter again with a fresh attempt budget."""
    path = f"/api/v1/notices/admin/dead-letters/{quote(delivery_id, safe='')}/replay"
    await changed(viewer.session, viewer.api.post(path), f"Delivery {delivery_id} queued again.")
    base = request.scope.get("root_path", "").rstrip("/")
    channel = form.get("channel")
    back = f"{base}/notices" + (f"?channel={quote(channel)}" if channel else "")
    return RedirectResponse(back, status_code=303)
