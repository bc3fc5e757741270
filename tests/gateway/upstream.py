"""A tiny upstream for gateway tests: echoes requests, streams, hangs on demand, WebSockets."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


@dataclass
class UpstreamState:
    name: str
    hang: bool = False
    fail_health: bool = False
    status: int = 200
    #: A Retry-After header on every echo answer (with ``status`` 503: "my database is away").
    retry_after: str | None = None
    posts: list[str] = field(default_factory=list)
    requests: int = 0
    #: Send the response head, then die before the body (the connection drops).
    truncate: bool = False
    #: Responses of /api/v1/echo/big still being streamed.
    streaming: int = 0


class TruncatedResponse(Response):
    """A head promising a body that never comes: the server drops the connection."""

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        await send(
            {"type": "http.response.start", "status": 200,
             "headers": [(b"content-length", b"83"), (b"content-type", b"application/json")]}
        )  # fmt: skip
        raise RuntimeError("upstream died between head and body")


def upstream_app(state: UpstreamState) -> Starlette:
    async def maybe_hang() -> None:
        while state.hang:
            await asyncio.sleep(0.05)

    async def healthz(request: Request) -> Response:
        await maybe_hang()
        if state.fail_health:
            return PlainTextResponse("down", status_code=500)
        return PlainTextResponse("ok")

    async def echo(request: Request) -> Response:
        await maybe_hang()
        state.requests += 1
        if state.truncate:
            return TruncatedResponse()
        body = await request.body()
        if request.method == "POST":
            state.posts.append(request.headers.get("x-test-id", ""))
        return JSONResponse(
            {
                "upstream": state.name,
                "method": request.method,
                "path": request.url.path,
                "raw_path": request.scope["raw_path"].decode("latin-1"),
                "query": request.url.query,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body_length": len(body),
            },
            status_code=state.status,
            headers={
                "x-upstream": state.name,
                "x-edge-instance": f"echo-{state.name}",
                "connection": "keep-alive, x-secret-hop",
                "x-secret-hop": "1",
            }
            | ({"retry-after": state.retry_after} if state.retry_after else {}),
        )

    async def slow(request: Request) -> Response:
        await asyncio.sleep(float(request.query_params.get("s", "1")))
        return JSONResponse({"upstream": state.name, "slow": True})

    async def stream(request: Request) -> Response:
        async def chunks():  # type: ignore[no-untyped-def]
            for i in range(5):
                yield f"chunk-{i}\n".encode()
                await asyncio.sleep(0.2)

        return StreamingResponse(chunks(), media_type="text/plain")

    async def big(request: Request) -> Response:
        """``mb`` MiB in 64 KiB pieces: more than a client that does not read will take."""
        size = int(request.query_params.get("mb", "64"))
        piece = b"x" * 65536

        async def chunks():  # type: ignore[no-untyped-def]
            state.streaming += 1
            try:
                for _ in range(size * 16):
                    yield piece
            finally:
                state.streaming -= 1

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    async def sized(request: Request) -> Response:
        """One answer of ``kb`` KiB with a Content-Length (as a JSON API answers a big list)."""
        size = int(request.query_params.get("kb", "390"))
        return Response(b"[" + b"1," * (size * 512 - 1) + b"1]", media_type="application/json")

    async def upload(request: Request) -> Response:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
        return JSONResponse({"upstream": state.name, "received": total})

    async def ws_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_text(f"{state.name}:{text}")
        except Exception:
            return

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/api/v1/echo/slow", slow),
            Route("/api/v1/echo/stream", stream),
            Route("/api/v1/echo/big", big),
            Route("/api/v1/echo/sized", sized),
            Route("/api/v1/echo/upload", upload, methods=["POST", "PUT"]),
            WebSocketRoute("/api/v1/echo/ws", ws_echo),
            WebSocketRoute("/api/v1/private/ws", ws_echo),
            Route(
                "/api/v1/echo/{rest:path}", echo, methods=["GET", "POST", "PUT", "DELETE", "HEAD"]
            ),
            Route("/api/v1/echo", echo, methods=["GET", "POST", "PUT", "DELETE", "HEAD"]),
            Route("/api/v1/private/{rest:path}", echo),
            Route("/internal/secret", echo),
        ]
    )


def hostile_upstream() -> Starlette:
    """The upstream app for a separate process (``uvicorn --factory``)."""
    return upstream_app(UpstreamState("a"))
