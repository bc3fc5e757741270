"""Routes: the table the gateway runs (with its source and version), and its sv-config
namespace: edit the draft as JSON, see the diff against the current release, publish
it (to everyone, or as a gray release to chosen gateways or regions, then promote or
abort), and roll back to an earlier release."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway_api.console.client import PlatformError
from gateway_api.console.data import routes as route_data
from gateway_api.console.deps import ChangeDep, ConsoleDep, FormDep, Viewer, ViewerDep
from gateway_api.console.paging import WindowDep, paginate
from gateway_api.console.rendering import render

router = APIRouter()


def _back(request: Request, where: str = "/routes") -> Response:
    base = str(request.scope.get("root_path", "")).rstrip("/")
    return RedirectResponse(f"{base}{where}", status_code=303)


def _draft_document(draft: dict[str, Any]) -> dict[str, Any]:
    values = {item["key"]: item["value"] for item in draft.get("items", [])}
    return {"routes": values.get("routes", []), "defaults": values.get("defaults", {})}


@router.get("/routes", response_class=HTMLResponse)
async def routes(
    request: Request, viewer: ViewerDep, console: ConsoleDep, win: WindowDep
) -> Response:
    """The running table (searched and paged) and the namespace's state."""
    table = route_data.running(console.gateway)
    page = paginate(
        table["rows"],
        win,
        lambda r: f"{r['name']} {r['service']} {r['access']} {r['scope']}",
    )
    namespace = route_data.RouteNamespace.of(console.gateway)
    info: dict[str, Any] | None = None
    releases: dict[str, Any] = {"items": []}
    draft_text, changes, violations, error = "", None, [], ""
    try:
        info = await namespace.info(viewer.api)
        if info is not None:
            releases = await namespace.releases(viewer.api)
            draft = await namespace.draft(viewer.api)
            draft_text = route_data.pretty(_draft_document(draft))
            changes = draft.get("changes")
            violations = draft.get("schema_violations", [])
    except PlatformError as exc:
        error = f"sv-config: {exc.message}"
    diff: list[str] = []
    if info is not None and changes and any(changes.values()):
        current = {k: info.get("values", {}).get(k) for k in ("routes", "defaults")}
        diff = route_data.text_diff(current, json.loads(draft_text), ("current release", "draft"))
    return render(
        request,
        "pages/routes.html",
        table=table,
        page=page,
        namespace=namespace,
        info=info,
        releases=releases,
        draft_text=draft_text,
        diff=diff,
        violations=violations,
        error=error,
    )


def _fail(viewer: Viewer, what: str, exc: PlatformError) -> None:
    viewer.session.flash("error", f"{what}: {exc.message}")


@router.post("/routes/namespace")
async def create_namespace(request: Request, viewer: ChangeDep, console: ConsoleDep) -> Response:
    """Create the route namespace, its draft holding the gateway's route file."""
    namespace = route_data.RouteNamespace.of(console.gateway)
    try:
        await namespace.create(viewer.api, route_data.file_document(console.gateway))
        viewer.session.flash("ok", f"Namespace {namespace.key} created from the route file.")
    except PlatformError as exc:
        _fail(viewer, "Creating the namespace failed", exc)
    return _back(request)


@router.post("/routes/draft")
async def save_draft(
    request: Request, viewer: ChangeDep, console: ConsoleDep, form: FormDep
) -> Response:
    """Save the edited table (JSON with ``routes`` and ``defaults``) as the draft."""
    try:
        document = json.loads(form.get("document"))
    except ValueError as exc:
        viewer.session.flash("error", f"The table is not valid JSON: {exc}")
        return _back(request)
    if not isinstance(document, dict) or not isinstance(document.get("routes"), list):
        viewer.session.flash("error", 'The table must be an object with a "routes" array.')
        return _back(request)
    document.setdefault("defaults", {})
    if not isinstance(document["defaults"], dict):
        viewer.session.flash("error", '"defaults" must be an object.')
        return _back(request)
    namespace = route_data.RouteNamespace.of(console.gateway)
    try:
        await namespace.save_draft(viewer.api, document)
        viewer.session.flash("ok", "Draft saved: review the diff, then publish.")
    except PlatformError as exc:
        _fail(viewer, "Saving the draft failed", exc)
    return _back(request, "/routes#draft")


@router.post("/routes/publish")
async def publish(
    request: Request, viewer: ChangeDep, console: ConsoleDep, form: FormDep
) -> Response:
    """Publish the draft: to everyone, or (with targets) as a gray release."""
    namespace = route_data.RouteNamespace.of(console.gateway)
    comment = form.get("comment").strip()[:500]
    instances = [s.strip() for s in form.get("gray_instances").split(",") if s.strip()]
    regions = [s.strip() for s in form.get("gray_regions").split(",") if s.strip()]
    try:
        if instances or regions:
            release = await namespace.gray(
                viewer.api, {"instances": instances, "regions": regions}, comment
            )
            number = release.get("release", release).get("number")
            viewer.session.flash("ok", f"Gray release {number} started.")
        else:
            release = await namespace.publish(viewer.api, comment)
            viewer.session.flash("ok", f"Release {release['number']} published.")
    except PlatformError as exc:
        _fail(viewer, "Publishing failed", exc)
    return _back(request)


@router.post("/routes/gray/{action}")
async def gray_end(
    request: Request, action: str, viewer: ChangeDep, console: ConsoleDep
) -> Response:
    """Promote the running gray release to everyone, or abort it."""
    if action not in ("promote", "abort"):
        viewer.session.flash("error", "Unknown gray release action.")
        return _back(request)
    namespace = route_data.RouteNamespace.of(console.gateway)
    try:
        await namespace.gray_end(viewer.api, action)
        viewer.session.flash(
            "ok", f"Gray release {action}d." if action == "promote" else "Gray release aborted."
        )
    except PlatformError as exc:
        _fail(viewer, f"Gray {action} failed", exc)
    return _back(request)


@router.post("/routes/rollback")
async def rollback(
    request: Request, viewer: ChangeDep, console: ConsoleDep, form: FormDep
) -> Response:
    """Roll back: a new release with the content of an earlier one."""
    namespace = route_data.RouteNamespace.of(console.gateway)
    try:
        to = int(form.get("to"))
    except ValueError:
        viewer.session.flash("error", "Choose the release to roll back to.")
        return _back(request)
    try:
        release = await namespace.rollback(viewer.api, to, f"rollback to {to} (console)")
        viewer.session.flash("ok", f"Rolled back to release {to}: release {release['number']}.")
    except PlatformError as exc:
        _fail(viewer, "Rollback failed", exc)
    return _back(request)
