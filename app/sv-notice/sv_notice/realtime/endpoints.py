"""The realtime stream of the calling user: server-sent events or a WebSocket.

Both first send a ``ready`` event once the connection is registered, then one
``notice`` event per notice. SSE clients reconnecting with ``Last-Event-ID`` get
the inbox notices they missed first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from edgelib.db import Database
from edgelib.deps import CurrentUser
from edgelib.tasks import cancel
from sv_notice.deps import HubDep, SettingsDep, websocket_user
from sv_notice.inbox.repository import InboxRepository
from sv_notice.inbox.service import InboxService
from sv_notice.realtime.hub import Connection
from sv_notice.schemas import ResourceId

router = APIRouter(prefix="/api/v1/notices", tags=["realtime"])

#: WebSocket close code for a caller the gateway did not vouch for (RFC 6455 "policy").
POLICY_VIOLATION = 1008


def _sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


async def _missed(database: Database, user_id: str, last_id: str) -> list[dict[str, Any]]:
    async with database.sessions() as session:
        notices = await InboxService(InboxRepository(session)).after(user_id, last_id)
    return [n.model_dump(mode="json") for n in notices]


async def _next(connection: Connection, heartbeat: float) -> dict[str, Any] | None:
    """The next event, or None when ``heartbeat`` passes without one."""
    try:
        return await asyncio.wait_for(connection.queue.get(), heartbeat)
    except TimeoutError:
        return None


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(
    user: CurrentUser,
    hub: HubDep,
    settings: SettingsDep,
    request: Request,
    last_event_id: Annotated[ResourceId | None, Header(alias="last-event-id")] = None,
) -> StreamingResponse:
    """Your notices as server-sent events (``event: notice``), as they are sent."""
    database: Database = request.app.state.database

    async def events() -> AsyncIterator[bytes]:
        async with hub.connect(user.user_id) as connection:
            yield b"retry: 3000\n" + _sse("ready", {"user_id": user.user_id})
            if last_event_id:
                for notice in await _missed(database, user.user_id, last_event_id):
                    yield _sse("notice", {"type": "notice", "notice": notice}, notice["id"])
            while True:
                event = await _next(connection, settings.realtime_heartbeat)
                if event is None:
                    yield b": keep-alive\n\n"
                    continue
                if connection.dropped:
                    yield _sse("lagged", {"dropped": connection.dropped})
                    connection.dropped = 0
                yield _sse(event.get("type", "notice"), event, event.get("notice", {}).get("id"))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


@router.websocket("/ws")
async def websocket(websocket: WebSocket) -> None:
    """Your notices over a WebSocket: JSON messages ``{"type": "notice", "notice": ...}``."""
    user = await websocket_user(websocket)
    if user is None:
        await websocket.close(code=POLICY_VIOLATION, reason="authentication required")
        return
    hub = websocket.app.state.realtime_hub
    heartbeat: float = websocket.app.state.settings.realtime_heartbeat
    await websocket.accept()
    async with hub.connect(user.user_id) as connection:
        await websocket.send_text(orjson.dumps({"type": "ready", "user_id": user.user_id}).decode())
        reader = asyncio.create_task(_read_until_closed(websocket))
        try:
            while not reader.done():
                getter = asyncio.create_task(_next(connection, heartbeat))
                await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    await cancel(getter)
                    break
                event = getter.result()
                if event is None:
                    event = {"type": "ping"}
                elif connection.dropped:
                    await websocket.send_text(
                        orjson.dumps({"type": "lagged", "dropped": connection.dropped}).decode()
                    )
                    connection.dropped = 0
                await websocket.send_text(orjson.dumps(event).decode())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            await cancel(reader)


async def _read_until_closed(websocket: WebSocket) -> None:
    """Answer pings; return when the client goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") and '"ping"' in message["text"]:
            await websocket.send_text('{"type":"pong"}')
