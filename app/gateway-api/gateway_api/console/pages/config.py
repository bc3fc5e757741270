"""Config: sv-config's namespaces (searched and paged here) and, per namespace, its
current values, the gray release if one runs, and the release history with each
release's content and its difference from the one before (read only: publishing is
the Routes page's and the API's)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from gateway_api.console.deps import ViewerDep
from gateway_api.console.fetching import Fetched, fetched
from gateway_api.console.paging import Window, paginate, window
from gateway_api.console.rendering import is_htmx, render

router = APIRouter()

#: Releases per page.
RELEASES_PAGE = 20
Environment = Literal["local", "dev", "test", "prod"]
Cluster = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
Name = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
Number = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/config", response_class=HTMLResponse, name="page-config")
async def namespaces(
    request: Request,
    viewer: ViewerDep,
    win: Annotated[Window, Depends(window)],
    environment: Environment | None = None,
    app: Annotated[str, Query(pattern=r"^[A-Za-z0-9_.:-]{0,64}$")] = "",
) -> Response:
    """Namespaces by environment and application, searched by name."""
    listed: Fetched[list[dict[str, Any]]] = await fetched(
        viewer.api.get("/api/v1/config/namespaces", environment=environment, app=app or None)
    )
    found = None
    if listed.data is not None:
        rows = sorted(listed.data, key=lambda n: (n["environment"], n["cluster"], n["name"]))
        keep = {k: v for k, v in {"environment": environment or "", "app": app}.items() if v}
        found = paginate(rows, win, lambda n: str(n["name"]), keep=keep)
    context: dict[str, Any] = {
        "listed": listed,
        "found": found,
        "environment": environment or "",
        "app": app,
        "q": win.q,
    }
    if is_htmx(request):
        return render(request, "pages/config/results.html", **context)
    return render(request, "pages/config/index.html", **context)


@router.get(
    "/config/ns/{environment}/{cluster}/{name}", response_class=HTMLResponse, name="page-config-ns"
)
async def namespace(
    request: Request,
    environment: Environment,
    cluster: Cluster,
    name: Name,
    viewer: ViewerDep,
    before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """A namespace: current values, the gray release, and its releases a page at a time."""
    ns = f"{environment}/{cluster}/{name}"
    detail, releases = await asyncio.gather(
        fetched(viewer.api.get(f"/api/v1/config/namespaces/{ns}")),
        fetched(
            viewer.api.get(f"/api/v1/config/releases/{ns}", limit=RELEASES_PAGE, before=before)
        ),
    )
    gray: Fetched[Any] | None = None
    if detail.data and detail.data.get("gray_release"):
        gray = await fetched(viewer.api.get(f"/api/v1/config/gray/{ns}"))
    return render(
        request,
        "pages/config/namespace.html",
        404 if detail.status == 404 else 200,
        ns=ns,
        environment=environment,
        cluster=cluster,
        name=name,
        detail=detail,
        releases=releases,
        gray=gray,
        before=before,
    )


@router.get(
    "/config/ns/{environment}/{cluster}/{name}/releases/{number}",
    response_class=HTMLResponse,
    name="page-config-release",
)
async def release(
    request: Request,
    environment: Environment,
    cluster: Cluster,
    name: Name,
    number: Number,
    viewer: ViewerDep,
) -> Response:
    """One release: its content, and what changed from the release before it."""
    ns = f"{environment}/{cluster}/{name}"
    calls = [fetched(viewer.api.get(f"/api/v1/config/releases/{ns}/{number}"))]
    if number > 1:
        path = f"/api/v1/config/releases/{ns}/diff"
        calls.append(
            fetched(viewer.api.call("GET", path, params={"from": number - 1, "to": number}))
        )
    found = await asyncio.gather(*calls)
    return render(
        request,
        "pages/config/release.html",
        404 if found[0].status == 404 else 200,
        ns=ns,
        number=number,
        found=found[0],
        diff=found[1] if len(found) > 1 else None,
    )
