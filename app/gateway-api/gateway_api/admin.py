"""The admin listener's own routes (loopback only by default)."""

from fastapi import APIRouter, Request

from gateway_api.workers import with_workers

router = APIRouter(tags=["admin"])


@router.get("/cluster")
async def cluster(request: Request) -> dict[str, object]:
    """Every upstream instance with its health, in-flight requests and counters."""
    gateway = request.app.state.gateway
    result: dict[str, object] = with_workers(gateway, gateway.cluster())
    return result
