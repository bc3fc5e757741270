"""The console on the public port (``GATEWAY_CONSOLE_PUBLIC``): requests under
``/admin`` go to the console's ASGI app, every other request to the proxy unchanged.

Without the setting this module is not used at all, so the proxy's per-request path is
the same; with it, a request pays one prefix test before the proxy runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from gateway_api.transport.exchange import ClientGone, Exchange

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

    def __call__(self, exchange: Exchange) -> Awaitable[None]:
        # A plain function handing back the proxy's coroutine: no frame of its own per
        # request (bench/gateway_instructions.py --route pipeline-console-public).
        path: str = exchange.scope["path"]
        if path.startswith(PREFIX) and (len(path) == len(PREFIX) or path[len(PREFIX)] == "/"):
            return serve_asgi(self.console_app, exchange, PREFIX)
        return self.proxy(exchange)  # type: ignore[no-any-return]


def _scope(exchange: Exchange, root_path: str) -> dict[str, Any]:
    req = exchange.scope
    return {
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


class _Channel:
    """ASGI ``receive`` and ``send`` over one exchange."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.body_done = not exchange.has_body
        self.sent_last = False
        self.finished = asyncio.Event()
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []

    async def receive(self) -> dict[str, Any]:
        if not self.body_done:
            try:
                chunk = await self.exchange.receive()
            except ClientGone:
                return {"type": "http.disconnect"}
            self.body_done = chunk == b""
            return {"type": "http.request", "body": chunk, "more_body": not self.body_done}
        if self.sent_last:
            await self.finished.wait()
            return {"type": "http.disconnect"}
        self.sent_last = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        exchange = self.exchange
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = [
                (k.lower(), v) for k, v in message.get("headers", []) if k.lower() not in _DROPPED
            ]
            return
        if message["type"] != "http.response.body":
            return
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if not exchange.response_started:
            exchange.start_response(self.status, self.headers, length=None if more else len(body))
        if body:
            exchange.write(body)
            await exchange.drain()
        if not more:
            exchange.end()
            self.finished.set()


async def serve_asgi(app: Any, exchange: Exchange, root_path: str) -> None:
    """Run one request of ``exchange`` through the ASGI ``app`` mounted at ``root_path``."""
    channel = _Channel(exchange)
    try:
        await app(_scope(exchange, root_path), channel.receive, channel.send)
    finally:
        channel.finished.set()
        if not exchange.response_started:
            exchange.respond(502, [(b"content-type", b"text/plain")], b"console error")
        elif not exchange.response_done:
            exchange.abort()
