"""Tenants and apps: create and edit tenants; each tenant's apps (create, rename,
disable, rotate the secret), their quotas (auth-rbac's ``/api/v1/quotas``) and each
app's traffic chart (sv-log's statistics)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from edgelib.identity import DEFAULT_TENANT
from gateway_api.console.client import PlatformError
from gateway_api.console.data import tenants as data
from gateway_api.console.data import traffic
from gateway_api.console.deps import ChangeDep, FormDep, Viewer, ViewerDep
from gateway_api.console.paging import WindowDep, paginate
from gateway_api.console.rendering import render

router = APIRouter()


def _to(request: Request, where: str) -> Response:
    base = str(request.scope.get("root_path", "")).rstrip("/")
    return RedirectResponse(f"{base}{where}", status_code=303)


def _fail(viewer: Viewer, what: str, exc: PlatformError) -> None:
    viewer.session.flash("error", f"{what}: {exc.message}")


@router.get("/tenants", response_class=HTMLResponse)
async def tenant_list(request: Request, viewer: ViewerDep, win: WindowDep) -> Response:
    """Every tenant the viewer may see, searched and paged."""
    rows = await data.tenants(viewer.api)
    page = paginate(rows, win, lambda t: f"{t['id']} {t['name']}")
    return render(request, "pages/tenants.html", page=page)


@router.post("/tenants")
async def create_tenant(request: Request, viewer: ChangeDep, form: FormDep) -> Response:
    tenant_id, name = form.get("id").strip(), form.get("name").strip()
    try:
        await viewer.api.post("/api/v1/tenants", {"id": tenant_id, "name": name or tenant_id})
    except PlatformError as exc:
        _fail(viewer, "Creating the tenant failed", exc)
        return _to(request, "/tenants")
    viewer.session.flash("ok", f"Tenant {tenant_id} created.")
    return _to(request, f"/tenants/{tenant_id}")


@router.get("/tenants/{tenant_id}", response_class=HTMLResponse)
async def tenant_detail(
    request: Request, tenant_id: str, viewer: ViewerDep, win: WindowDep
) -> Response:
    """One tenant: its record, its apps with their quotas."""
    apps, quotas = await asyncio.gather(
        data.apps(viewer.api, tenant_id), data.app_quotas(viewer.api, tenant_id)
    )
    record = (
        {"id": DEFAULT_TENANT, "name": "the platform's own", "disabled": False}
        if tenant_id == DEFAULT_TENANT
        else await data.tenant(viewer.api, tenant_id)
    )
    page = paginate(apps, win, lambda a: f"{a['client_id']} {a['name']}")
    return render(
        request,
        "pages/tenant.html",
        tenant=record,
        page=page,
        quotas=quotas,
    )


@router.post("/tenants/{tenant_id}")
async def edit_tenant(
    request: Request, tenant_id: str, viewer: ChangeDep, form: FormDep
) -> Response:
    """Rename, disable or enable a tenant."""
    body: dict[str, Any] = {}
    if form.get("name").strip():
        body["name"] = form.get("name").strip()
    if "disabled" in form:
        body["disabled"] = form.get("disabled") == "true"
    try:
        await viewer.api.patch(f"/api/v1/tenants/{tenant_id}", body)
        viewer.session.flash("ok", f"Tenant {tenant_id} saved.")
    except PlatformError as exc:
        _fail(viewer, "Saving the tenant failed", exc)
    return _to(request, f"/tenants/{tenant_id}")


def _show_secret(viewer: Viewer, client_id: str, secret: str) -> None:
    viewer.session.flash("info", f"Secret of {client_id} (shown once, copy it now): {secret}")


@router.post("/tenants/{tenant_id}/apps")
async def create_app(
    request: Request, tenant_id: str, viewer: ChangeDep, form: FormDep
) -> Response:
    """A new app of the tenant, and its quota when limits are given."""
    try:
        limits = data.quota_limits({f: form.get(f) for f in data.QUOTA_FIELDS})
    except ValueError as exc:
        viewer.session.flash("error", f"Quota: {exc}")
        return _to(request, f"/tenants/{tenant_id}")
    try:
        created = await viewer.api.post(
            "/api/v1/auth/apps", {"name": form.get("name").strip(), "tenant": tenant_id}
        )
    except PlatformError as exc:
        _fail(viewer, "Creating the app failed", exc)
        return _to(request, f"/tenants/{tenant_id}")
    client_id = created["client_id"]
    _show_secret(viewer, client_id, created["client_secret"])
    if limits:
        try:
            await data.set_app_quota(viewer.api, tenant_id, client_id, limits)
            viewer.session.flash("ok", f"App {client_id} created with its quota.")
        except PlatformError as exc:
            _fail(viewer, f"App {client_id} created, but its quota failed", exc)
    else:
        viewer.session.flash("ok", f"App {client_id} created.")
    return _to(request, f"/tenants/{tenant_id}")


@router.get("/tenants/{tenant_id}/apps/{client_id}", response_class=HTMLResponse)
async def app_detail(
    request: Request, tenant_id: str, client_id: str, viewer: ViewerDep
) -> Response:
    """One app: its record, quota and traffic over the last 24 hours."""
    record, quotas = await asyncio.gather(
        data.app(viewer.api, client_id), data.app_quotas(viewer.api, tenant_id)
    )
    chart, error = None, ""
    try:
        chart = await traffic.series(
            viewer.api, step="hour", hours=24, tenant=tenant_id, app=client_id
        )
    except PlatformError as exc:
        error = f"Traffic statistics: {exc.message}"
    return render(
        request,
        "pages/app.html",
        app=record,
        tenant_id=tenant_id,
        quota=quotas.get(client_id),
        traffic_chart=chart,
        error=error,
    )


@router.post("/tenants/{tenant_id}/apps/{client_id}/{action}")
async def app_action(
    request: Request,
    tenant_id: str,
    client_id: str,
    action: str,
    viewer: ChangeDep,
    form: FormDep,
) -> Response:
    """``edit`` (name, disabled), ``secret`` (rotate) or ``quota`` (set the limits)."""
    where = f"/tenants/{tenant_id}/apps/{client_id}"
    try:
        if action == "edit":
            body: dict[str, Any] = {}
            if form.get("name").strip():
                body["name"] = form.get("name").strip()
            if "disabled" in form:
                body["disabled"] = form.get("disabled") == "true"
            await viewer.api.patch(f"/api/v1/auth/apps/{client_id}", body)
            viewer.session.flash("ok", f"App {client_id} saved.")
        elif action == "secret":
            overlap = form.get("overlap_seconds").strip() or "3600"
            rotated = await viewer.api.post(
                f"/api/v1/auth/apps/{client_id}/secret", {"overlap_seconds": int(overlap)}
            )
            _show_secret(viewer, client_id, rotated["client_secret"])
        elif action == "quota":
            limits = data.quota_limits({f: form.get(f) for f in data.QUOTA_FIELDS})
            if not limits:
                await viewer.api.delete(
                    "/api/v1/quotas", kind="app", target=client_id, tenant=tenant_id
                )
                viewer.session.flash("ok", "Quota removed.")
            else:
                await data.set_app_quota(viewer.api, tenant_id, client_id, limits)
                viewer.session.flash("ok", "Quota saved.")
        else:
            viewer.session.flash("error", f"Unknown action {action}.")
    except ValueError as exc:
        viewer.session.flash("error", f"Bad number: {exc}")
    except PlatformError as exc:
        _fail(viewer, f"{action.capitalize()} failed", exc)
    return _to(request, where)
