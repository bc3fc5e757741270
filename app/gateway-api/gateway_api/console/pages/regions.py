"""Regions: every region with its status, discovery and weight; the assignment rules;
a dry run of the assignment; and a directory lookup (sv-region's API). Changes: a
region's status and weight, adding and removing a rule (``regions:write``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway_api.console.deps import ChangeDep, FormDep, ViewerDep
from gateway_api.console.fetching import Fetched, changed, fetched
from gateway_api.console.rendering import render

router = APIRouter()

REGION = r"^[a-z][a-z0-9-]{0,31}$"
RegionName = Annotated[str, Path(pattern=REGION)]
#: Directory entries a lookup shows at most.
LOOKUP_LIMIT = 20


def _back(request: Request) -> RedirectResponse:
    base = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(f"{base}/regions", status_code=303)


@router.get("/regions", response_class=HTMLResponse, name="page-regions")
async def regions(
    request: Request,
    viewer: ViewerDep,
    lookup: Annotated[str, Query(max_length=64)] = "",
    username: Annotated[str, Query(max_length=64)] = "",
    phone: Annotated[str, Query(max_length=32)] = "",
    address: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """Regions and rules; with ``lookup``, directory entries; with ``username``, the
    region a new user would get."""
    api = viewer.api
    listed, rules = await asyncio.gather(
        fetched(api.get("/api/v1/regions")), fetched(api.get("/api/v1/regions/rules"))
    )
    found: Fetched[Any] | None = None
    if lookup.strip():
        found = await fetched(
            api.get("/api/v1/regions/directory", q=lookup.strip(), limit=LOOKUP_LIMIT)
        )
    assignment: Fetched[Any] | None = None
    if username.strip():
        assignment = await fetched(
            api.get(
                "/api/v1/regions/assignment",
                username=username.strip(),
                phone=phone.strip() or None,
                address=address.strip() or None,
            )
        )
    return render(
        request,
        "pages/regions.html",
        listed=listed,
        rules=rules,
        lookup=lookup,
        found=found,
        username=username,
        phone=phone,
        address=address,
        assignment=assignment,
    )


@router.post("/regions/rules", name="region-rule-add")
async def add_rule(request: Request, viewer: ChangeDep, form: FormDep) -> Response:
    """Add an assignment rule (phone prefix or client network → region)."""
    body: dict[str, Any] = {
        "kind": form.get("kind"),
        "match": form.get("match").strip(),
        "region": form.get("region"),
    }
    if form.get("priority").strip():
        try:
            body["priority"] = int(form.get("priority"))
        except ValueError:
            viewer.session.flash("error", "The priority must be a whole number.")
            return _back(request)
    done = f"Rule {body['kind']} {body['match']} → {body['region']} added."
    await changed(viewer.session, viewer.api.post("/api/v1/regions/rules", body), done)
    return _back(request)


@router.post("/regions/rules/{rule_id}/delete", name="region-rule-delete")
async def delete_rule(
    request: Request,
    rule_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    viewer: ChangeDep,
) -> Response:
    """Remove an assignment rule."""
    call = viewer.api.delete(f"/api/v1/regions/rules/{rule_id}")
    await changed(viewer.session, call, f"Rule {rule_id} removed.")
    return _back(request)


@router.post("/regions/{name}", name="region-update")
async def update_region(
    request: Request, name: RegionName, viewer: ChangeDep, form: FormDep
) -> Response:
    """Set a region's status and weight, keeping its endpoints and discovery source."""
    found: Fetched[Any] = await fetched(viewer.api.get(f"/api/v1/regions/{name}"))
    current = found.data
    if current is None:
        viewer.session.flash("error", f"Not done: {found.error}")
        return _back(request)
    try:
        weight = int(form.get("weight", str(current["weight"])))
    except ValueError:
        viewer.session.flash("error", "The weight must be a whole number.")
        return _back(request)
    body = {
        "status": form.get("status", current["status"]),
        "endpoints": current["endpoints"],
        "discovery": current["discovery"],
        "weight": weight,
    }
    done = f"Region {name}: {body['status']}, weight {weight}."
    await changed(viewer.session, viewer.api.put(f"/api/v1/regions/{name}", body), done)
    return _back(request)
