"""Refuse request bodies over a size with 413 before they are read into memory."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgelib.problems import problem_response
from sv_log.exceptions import BatchTooLarge


class BodyLimitMiddleware:
    """Caps the body of requests to ``paths``: by Content-Length, and while it streams."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, paths: frozenset[str]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None:
            if not declared.strip().isdigit():
                response = problem_response(
                    400, "bad-request", "Bad request", "Content-Length is not a number."
                )
                await response(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                response = problem_response(
                    413,
                    BatchTooLarge.type_slug,
                    BatchTooLarge.title,
                    f"the body is over {self.max_bytes} bytes",
                    limit=self.max_bytes,
                )
                await response(scope, receive, send)
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the route's body read: the problem handler answers 413.
                    raise BatchTooLarge(
                        f"the body is over {self.max_bytes} bytes", limit=self.max_bytes
                    )
            return message

        await self.app(scope, limited, send)
