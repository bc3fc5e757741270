"""A stand-in for sv-region's user directory: ``GET /internal/directory/usernames/{name}``.

sv-money only asks the directory where a username lives. Tests use this instead of
sv-region so that they depend on that one answer and nothing else; run it as a process
with ``python -m tests.sv_money.directory_stub PORT USERS.json`` (``{"alice": ["<user
id>", "east"], ...}``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def directory_app(users: dict[str, tuple[str, str]]) -> Starlette:
    """``users``: username -> (user id, region)."""

    async def lookup(request: Request) -> JSONResponse:
        name = request.path_params["username"].lower()
        if name not in users:
            return JSONResponse(
                {"type": "https://edge.dev/problems/directory-entry-not-found", "status": 404},
                status_code=404,
                media_type="application/problem+json",
            )
        user_id, region = users[name]
        return JSONResponse(
            {
                "user_id": user_id,
                "username": name,
                "region": region,
                "status": "active",
                "created_at": "2026-01-01T00:00:00Z",
            }
        )

    async def ready(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ready"})

    return Starlette(
        routes=[
            Route("/internal/directory/usernames/{username}", lookup),
            Route("/readyz", ready),
        ]
    )


def main() -> None:
    import uvicorn

    port, users_file = int(sys.argv[1]), Path(sys.argv[2])
    users = {k: (v[0], v[1]) for k, v in json.loads(users_file.read_text()).items()}
    uvicorn.run(directory_app(users), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
