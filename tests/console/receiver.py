"""A webhook receiver on 127.0.0.1 for the browser tests (a thread: Playwright's sync
API owns the test's thread), answering every POST with ``status``."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


class HookReceiver:
    """``with HookReceiver(status=410) as r:`` serves ``r.url``; ``r.statuses`` lists the
    status each call got, in order; set ``r.status`` to change the next answers."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(min(length, 1 << 20))
                status = receiver.status
                receiver.statuses.append(status)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Silent: the test reads ``statuses``, and stderr is not its log."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> HookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
