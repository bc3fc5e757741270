"""Services: per service and region, the instances with health, circuit, balancing
policy, in-flight, requests and errors (this gateway's view, every worker's counters);
an instance can be drained (and restored) or ejected."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gateway_api.console.data import cluster as cluster_data
from gateway_api.console.deps import ChangeDep, ConsoleDep, FormDep, ViewerDep
from gateway_api.console.paging import WindowDep, paginate
from gateway_api.console.rendering import render

router = APIRouter()


@router.get("/services", response_class=HTMLResponse)
async def services(
    request: Request, viewer: ViewerDep, console: ConsoleDep, win: WindowDep
) -> Response:
    """Every pool and its instances, searched and paged by pool."""
    snapshot = cluster_data.cluster(console.gateway)
    pools = sorted(snapshot["services"], key=lambda p: (p["service"], p["region"] or ""))
    page = paginate(
        pools,
        win,
        lambda p: " ".join(
            [p["service"], p["region"] or "global"] + [i["id"] for i in p["instances"]]
        ),
    )
    return render(
        request,
        "pages/services.html",
        page=page,
        drained=console.drains.rows(),
        route_policies=cluster_data.route_policies(console.gateway),
        gateway=snapshot["gateway"],
        discovery=snapshot.get("discovery"),
    )


def _back(request: Request) -> Response:
    base = str(request.scope.get("root_path", "")).rstrip("/")
    return RedirectResponse(f"{base}/services", status_code=303)


@router.post("/services/instances/{instance_id}/{action}")
async def instance_action(
    request: Request,
    instance_id: str,
    action: str,
    viewer: ChangeDep,
    console: ConsoleDep,
    form: FormDep,
) -> Response:
    """``drain``, ``restore`` or ``eject`` one instance."""
    drains = console.drains
    try:
        if action == "drain":
            drains.drain(console.gateway, instance_id)
            viewer.session.flash("ok", f"{instance_id} drained: it takes no new requests.")
        elif action == "restore":
            drains.restore(instance_id)
            viewer.session.flash("ok", f"{instance_id} restored to its pool.")
        elif action == "eject":
            cluster_data.eject(console.gateway, instance_id)
            viewer.session.flash("ok", f"{instance_id} ejected: its circuit is open for 30 s.")
        else:
            viewer.session.flash("error", f"Unknown action {action}.")
    except cluster_data.InstanceNotFound:
        viewer.session.flash("error", f"No instance {instance_id} in this gateway's pools.")
    return _back(request)
