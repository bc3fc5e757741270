"""The admin listener's own routes (loopback only by default)."""

from fastapi import APIRouter, Request

router = APIRouter(tags=["admin"])


@router.get("/cluster")
async def cluster(request: Request) -> dict[str, object]:
    """Every upstream instance with its health, in-flight requests and counters."""
    result: dict[str, object] = request.app.state.gateway.cluster()
    return result
