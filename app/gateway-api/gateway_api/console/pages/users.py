"""Users: search every region's users (sv-region's directory), a user's home region,
live sessions (auth-jwt) and roles (auth-rbac), and ending a session."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway_api.console.deps import ChangeDep, ViewerDep
from gateway_api.console.fetching import changed, fetched
from gateway_api.console.rendering import is_htmx, render

router = APIRouter()

#: Users per page of a search.
PAGE_SIZE = 50
REGION = r"^([a-z][a-z0-9-]{0,31})?$"
UserId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
SessionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _user_path(request: Request, user_id: str) -> str:
    base = request.scope.get("root_path", "").rstrip("/")
    return f"{base}/users/{quote(user_id, safe='')}"


@router.get("/users", response_class=HTMLResponse, name="page-users")
async def users(
    request: Request,
    viewer: ViewerDep,
    q: Annotated[str, Query(max_length=64)] = "",
    region: Annotated[str, Query(pattern=REGION)] = "",
    after: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """Search users by username prefix or user id, in every region or one; by username."""
    api = viewer.api
    search, regions = await asyncio.gather(
        fetched(
            api.get(
                "/api/v1/regions/directory",
                q=q.strip(),
                region=region or None,
                after=after or None,
                limit=PAGE_SIZE,
            )
        ),
        fetched(api.get("/api/v1/regions")),
    )
    context: dict[str, Any] = {
        "q": q,
        "region": region,
        "after": after,
        "search": search,
        "regions": [r["name"] for r in regions.data or []],
    }
    if is_htmx(request):
        return render(request, "pages/users/results.html", **context)
    return render(request, "pages/users/index.html", **context)


@router.get("/users/{user_id}", response_class=HTMLResponse, name="page-user")
async def user(request: Request, user_id: UserId, viewer: ViewerDep) -> Response:
    """One user: home region and status, live sessions, roles in the default tenant."""
    api = viewer.api
    entry, sessions, roles = await asyncio.gather(
        fetched(api.get(f"/api/v1/regions/directory/{quote(user_id, safe='')}")),
        fetched(api.get(f"/api/v1/auth/users/{quote(user_id, safe='')}/sessions")),
        fetched(api.get(f"/api/v1/rbac/users/{quote(user_id, safe='')}/roles")),
    )
    status = 404 if entry.status == 404 else 200
    return render(
        request,
        "pages/users/user.html",
        status,
        user_id=user_id,
        entry=entry,
        sessions=sessions,
        roles=roles,
    )


@router.post("/users/{user_id}/sessions/{session_id}/revoke", name="revoke-session")
async def revoke_session(
    request: Request, user_id: UserId, session_id: SessionId, viewer: ChangeDep
) -> Response:
    """End one of the user's sessions (auth-jwt; the gateways refuse its tokens at once)."""
    path = f"/api/v1/auth/users/{quote(user_id, safe='')}/sessions/{quote(session_id, safe='')}"
    await changed(viewer.session, viewer.api.delete(path), f"Session {session_id} ended.")
    return RedirectResponse(_user_path(request, user_id), status_code=303)
