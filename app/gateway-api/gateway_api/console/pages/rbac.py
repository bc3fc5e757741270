"""RBAC: the roles of a tenant (Casbin domain) with their permissions and members, one
user's roles and permissions, and the changes: create a role, grant and revoke a
permission, assign and unassign a role (auth-rbac's API, ``rbac:admin``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway_api.console.client import UserApi
from gateway_api.console.deps import ChangeDep, FormDep, ViewerDep
from gateway_api.console.fetching import changed, fetched
from gateway_api.console.paging import Page, Window, window
from gateway_api.console.rendering import is_htmx, render

router = APIRouter()

NAME = r"^[A-Za-z0-9_.:@-]{1,128}$"
Domain = Annotated[str, Query(pattern=NAME)]
RoleName = Annotated[str, Path(pattern=NAME)]


def _role_path(request: Request, role: str, dom: str) -> str:
    base = request.scope.get("root_path", "").rstrip("/")
    return f"{base}/rbac/roles/{quote(role, safe='')}?{urlencode({'dom': dom})}"


async def _user_id(api: UserApi, who: str) -> str:
    """A user id for ``who``: a username the directory knows, else ``who`` as given."""
    found = await fetched(api.get("/api/v1/regions/directory", q=who, limit=1))
    for entry in (found.data or {}).get("items", []):
        if who.lower() in (entry["username"], entry["user_id"]):
            return str(entry["user_id"])
    return who


@router.get("/rbac", response_class=HTMLResponse, name="page-rbac")
async def rbac(request: Request, viewer: ViewerDep, dom: Domain = "default") -> Response:
    """The roles of tenant ``dom``: permissions and how many members each has."""
    roles, tenants = await asyncio.gather(
        fetched(viewer.api.get("/api/v1/rbac/roles", dom=dom, members="false")),
        fetched(viewer.api.get("/api/v1/tenants")),
    )
    domains = ["default", *(t["id"] for t in tenants.data or [] if t["id"] != "default")]
    return render(request, "pages/rbac/index.html", dom=dom, roles=roles, domains=domains)


@router.get("/rbac/roles/{name}", response_class=HTMLResponse, name="page-rbac-role")
async def role(
    request: Request,
    name: RoleName,
    viewer: ViewerDep,
    win: Annotated[Window, Depends(window)],
    dom: Domain = "default",
) -> Response:
    """One role: its permissions, and its members a page at a time (auth-rbac pages them)."""
    path = f"/api/v1/rbac/roles/{quote(name, safe='')}"
    found, page = await asyncio.gather(
        fetched(viewer.api.get(path, dom=dom, members="false")),
        fetched(
            viewer.api.get(f"{path}/members", dom=dom, q=win.q, offset=win.offset, limit=win.limit)
        ),
    )
    members = None
    if page.data is not None:
        members = Page.of_window(page.data["items"], page.data["total"], win, keep={"dom": dom})
    context: dict[str, Any] = {
        "name": name,
        "dom": dom,
        "role": found,
        "members": members,
        "members_error": page.error,
        "q": win.q,
    }
    if is_htmx(request):
        return render(request, "pages/rbac/members.html", **context)
    return render(request, "pages/rbac/role.html", 404 if found.status == 404 else 200, **context)


@router.get("/rbac/user", response_class=HTMLResponse, name="page-rbac-user")
async def user_access(
    request: Request,
    viewer: ViewerDep,
    who: Annotated[str, Query(min_length=1, max_length=128)],
    dom: Domain = "default",
) -> Response:
    """A user's roles (direct and inherited) and effective permissions in ``dom``."""
    user_id = await _user_id(viewer.api, who.strip())
    path = f"/api/v1/rbac/users/{quote(user_id, safe='')}"
    roles, granted = await asyncio.gather(
        fetched(viewer.api.get(f"{path}/roles", dom=dom)),
        fetched(viewer.api.get(f"{path}/permissions", dom=dom)),
    )
    return render(
        request,
        "pages/rbac/user.html",
        who=who,
        user_id=user_id,
        dom=dom,
        roles=roles,
        granted=granted,
    )


@router.post("/rbac/roles", name="rbac-create-role")
async def create_role(request: Request, viewer: ChangeDep, form: FormDep) -> Response:
    """Create a role in a tenant."""
    name, dom = form.get("name").strip(), form.get("dom", "default").strip() or "default"
    body = {"name": name, "dom": dom, "description": form.get("description").strip()}
    done = f"Role {name} created in {dom}."
    await changed(viewer.session, viewer.api.post("/api/v1/rbac/roles", body), done)
    return RedirectResponse(_role_path(request, name, dom), status_code=303)


@router.post("/rbac/roles/{name}/permissions", name="rbac-grant")
async def grant(request: Request, name: RoleName, viewer: ChangeDep, form: FormDep) -> Response:
    """Grant (``action=grant``) or revoke (``action=revoke``) ``obj:act`` to the role."""
    dom = form.get("dom", "default") or "default"
    obj, act = form.get("obj").strip(), form.get("act").strip()
    body = {"sub": name, "dom": dom, "obj": obj, "act": act}
    if form.get("action") == "revoke":
        call = viewer.api.call("DELETE", "/api/v1/rbac/policies", json=body)
        await changed(viewer.session, call, f"{obj}:{act} revoked from {name}.")
    else:
        call = viewer.api.post("/api/v1/rbac/policies", body)
        await changed(viewer.session, call, f"{obj}:{act} granted to {name}.")
    return RedirectResponse(_role_path(request, name, dom), status_code=303)


@router.post("/rbac/roles/{name}/members", name="rbac-assign")
async def assign(request: Request, name: RoleName, viewer: ChangeDep, form: FormDep) -> Response:
    """Assign (``action=assign``) the role to a user (id or username), or unassign it."""
    dom = form.get("dom", "default") or "default"
    who = form.get("user").strip()
    user_id = await _user_id(viewer.api, who) if who else who
    body = {"user": user_id, "role": name, "dom": dom}
    if form.get("action") == "unassign":
        call = viewer.api.call("DELETE", "/api/v1/rbac/assignments", json=body)
        await changed(viewer.session, call, f"{who} no longer holds {name}.")
    else:
        call = viewer.api.post("/api/v1/rbac/assignments", body)
        await changed(viewer.session, call, f"{who} now holds {name}.")
    return RedirectResponse(_role_path(request, name, dom), status_code=303)
