"""Pure ASGI middleware binding the request id and writing one access-log line."""

from __future__ import annotations

import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgelib.logs import reset_request_id, set_request_id

access_log = logging.getLogger("edge.access")

_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _valid_request_id(value: bytes) -> bool:
    return 0 < len(value) <= 128 and all(33 <= c < 127 for c in value)


class RequestContextMiddleware:
    """Keeps or creates ``X-Request-Id``, echoes it, names the instance, logs the request."""

    def __init__(self, app: ASGIApp, *, instance: str) -> None:
        self.app = app
        self.instance = instance.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _valid_request_id(value):
                request_id = value.decode()
                break
        if not request_id:
            request_id = uuid.uuid4().hex
        token = set_request_id(request_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"x-edge-instance", self.instance))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            if path not in _QUIET_PATHS:
                access_log.info(
                    "%s %s %s",
                    scope.get("method", ""),
                    path,
                    status,
                    extra={
                        "method": scope.get("method", ""),
                        "path": path,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    },
                )
            reset_request_id(token)
