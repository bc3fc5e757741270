"""WebSocket proxying: accept the client, open the upstream, relay both ways."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import aiohttp
from yarl import URL

from edgelib.problems import ServiceUnavailable

if TYPE_CHECKING:
    from gateway_api.routing import Route
    from gateway_api.upstreams import Pool

Scope = MutableMapping[str, Any]


async def proxy_websocket(
    scope: Scope,
    receive: Any,
    send: Any,
    *,
    session: aiohttp.ClientSession,
    pool: Pool,
    route: Route,
    headers: list[tuple[str, str]],
    hash_key: str | None,
) -> tuple[int, str]:
    """Relay one WebSocket session; returns (101, instance id) once it ends."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return 400, ""
    instance = pool.choose(route.balancing, hash_key)
    if instance is None:
        raise ServiceUnavailable(f"no healthy instance of {pool.service}")
    target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    url = URL(instance.url.replace("http", "ws", 1) + target, encoded=True)
    protocols = tuple(scope.get("subprotocols") or ())
    instance.in_flight += 1
    try:
        try:
            upstream = await session.ws_connect(
                url,
                headers=headers,
                protocols=protocols,
                timeout=aiohttp.ClientWSTimeout(ws_close=route.connect_timeout),
                autoping=True,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            instance.errors += 1
            instance.breaker.on_failure(asyncio.get_running_loop().time())
            await send({"type": "websocket.close", "code": 1011})
            return 502, f"{instance.spec.id}: {type(exc).__name__}"
        instance.breaker.on_success()
        await send({"type": "websocket.accept", "subprotocol": upstream.protocol})
        async with upstream:
            to_upstream = asyncio.create_task(_client_to_upstream(receive, upstream))
            to_client = asyncio.create_task(_upstream_to_client(upstream, send))
            _, pending = await asyncio.wait(
                {to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        instance.served += 1
        return 101, instance.spec.id
    finally:
        instance.in_flight -= 1


async def _client_to_upstream(receive: Any, upstream: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            await upstream.close(code=message.get("code", 1000))
            return
        if message.get("text") is not None:
            await upstream.send_str(message["text"])
        elif message.get("bytes") is not None:
            await upstream.send_bytes(message["bytes"])


async def _upstream_to_client(upstream: aiohttp.ClientWebSocketResponse, send: Any) -> None:
    async for msg in upstream:
        if msg.type == aiohttp.WSMsgType.TEXT:
            await send({"type": "websocket.send", "text": msg.data})
        elif msg.type == aiohttp.WSMsgType.BINARY:
            await send({"type": "websocket.send", "bytes": msg.data})
        else:
            break
    code = upstream.close_code or 1000
    with contextlib.suppress(Exception):
        await send({"type": "websocket.close", "code": code})
