"""The console on the public port (``GATEWAY_CONSOLE_PUBLIC``): requests under
``/admin`` go to the console's ASGI app, every other request to the proxy unchanged.

Without the setting this module is not used at all, so the proxy's per-request path is
the same; with it, a request pays one prefix test before the proxy runs.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway_api.transport.exchange import ClientGone, Exchange, Handler

PREFIX = "/admin"
_DROPPED = {b"content-length", b"transfer-encoding", b"connection"}


class PublicConsole:
    """The public handler with the console mounted under :data:`PREFIX`."""

    def __init__(self, proxy: Any, console_app: Any) -> None:
        self.proxy = proxy
        self.console_app = console_app
        self.bad_request = proxy.bad_request

    def close(self) -> None:
        self.proxy.close()

    async def __call__(self, exchange: Exchange) -> None:
        path: str = exchange.scope["path"]
        if path.startswith(PREFIX) and (len(path) == len(PREFIX) or path[len(PREFIX)] == "/"):
            await serve_asgi(self.console_app, exchange, PREFIX)
            return
        await self.proxy(exchange)


async def serve_asgi(app: Any, exchange: Exchange, root_path: str) -> None:
    """Run one request of ``exchange`` through the ASGI ``app`` mounted at ``root_path``."""
    req = exchange.scope
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": req.get("http_version", "1.1"),
        "method": req["method"],
        "scheme": req.get("scheme", "http"),
        "path": req["path"],
        "raw_path": req.get("raw_path", req["path"].encode()),
        "query_string": req.get("query_string", b""),
        "headers": req["headers"],
        "client": req.get("client"),
        "server": req.get("server"),
        "root_path": root_path,
        "state": {},
    }
    body_done = not exchange.has_body
    finished = asyncio.Event()
    status = 500
    headers: list[tuple[bytes, bytes]] = []

    async def receive() -> dict[str, Any]:
        nonlocal body_done
        if not body_done:
            try:
                chunk = await exchange.receive()
            except ClientGone:
                return {"type": "http.disconnect"}
            body_done = chunk == b""
            return {"type": "http.request", "body": chunk, "more_body": not body_done}
        if scope.get("_sent_empty"):
            await finished.wait()
            return {"type": "http.disconnect"}
        scope["_sent_empty"] = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = [(k.lower(), v) for k, v in message.get("headers", []) if k.lower() not in _DROPPED]
            return
        if message["type"] != "http.response.body":
            return
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if not exchange.response_started:
            exchange.start_response(status, headers, length=None if more else len(body))
        if body:
            exchange.write(body)
            await exchange.drain()
        if not more:
            exchange.end()
            finished.set()

    try:
        await app(scope, receive, send)
    finally:
        finished.set()
        if not exchange.response_started:
            exchange.respond(502, [(b"content-type", b"text/plain")], b"console error")
        elif not exchange.response_done:
            exchange.abort()


__all__ = ["Handler", "PublicConsole", "serve_asgi"]
