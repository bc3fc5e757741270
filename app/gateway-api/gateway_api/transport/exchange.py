"""The transport's contract with the layers above: one :class:`Exchange` per request.

A server calls a :data:`Handler` with an exchange for every request it parsed, in order
per connection; the handler reads the request from ``scope`` and :meth:`Exchange.receive`
and answers through the response methods. :mod:`gateway_api.transport.server` is the
server the gateway runs; another one (an ASGI adapter, an HTTP/2 server) could be
swapped in by implementing these Protocols, and nothing above the transport would
change. The WebSocket tunnel needs the raw client side of an accepted upgrade:
:class:`TunnelEnd`, which a server without upgrades need not offer (it sets
``upgrade`` to None on every exchange).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class ClientGone(Exception):
    """The client disconnected before its request was answered."""


class TunnelEnd(Protocol):
    """The client's side of an upgraded connection, spliced to an upstream's."""

    transport: asyncio.Transport
    closed: bool
    #: Reads so far (the tunnel's idle timer watches it).
    reads: int
    #: What the client sent after the upgrade request, before the tunnel existed.
    leftover: bytes
    #: Where the client's bytes go, and what to call when it closes or backs up.
    tunnel_sink: Callable[[bytes], None] | None
    tunnel_closed: Callable[[], None] | None
    tunnel_flow: Callable[[bool], None] | None

    def write(self, data: bytes) -> None: ...

    def unpark(self) -> None:
        """Start delivering the client's bytes to ``tunnel_sink``."""


class Exchange(Protocol):
    """One request on a client connection and the means to answer it."""

    #: The request: ``method``, ``path``, ``raw_path``, ``query_string``, ``headers``
    #: (lower-case names, bytes), ``http_version``, ``client``, ``scheme``.
    scope: dict[str, Any]
    keep_alive: bool
    has_body: bool
    #: The ``Upgrade`` protocol asked for (``b"websocket"``), else None.
    upgrade: bytes | None
    response_started: bool
    response_done: bool

    @property
    def conn(self) -> TunnelEnd:
        """The raw client side, for a WebSocket tunnel after a 101 answer."""

    async def receive(self) -> bytes:
        """The next piece of the request body; ``b""`` when it is complete; raises
        :class:`ClientGone` when the client left."""

    def start_response(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        *,
        length: int | None,
        body_follows: bool = True,
        flush: bool = True,
    ) -> None:
        """Status line and headers; the server adds the framing headers."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None:
        """Wait while the client reads slower than the response is written."""

    def end(self) -> None: ...

    def abort(self) -> None:
        """The response cannot be completed: drop the connection so the client knows."""

    def respond(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, head: bool = False
    ) -> None:
        """A whole small response at once."""


class TrustedPeers(Protocol):
    """Which peers' ``X-Forwarded-For``/``-Proto`` the server believes (load balancers)."""

    def covers(self, address: str) -> bool: ...


#: The layers above: one call per request.
Handler = Callable[[Exchange], Awaitable[None]]
#: The server's own refusals (malformed HTTP): headers and body for a status and detail.
BadRequest = Callable[[int, str], tuple[list[tuple[bytes, bytes]], bytes]]
