"""HTTP/2 with prior knowledge (h2c) on the public listener: transport/h2.py.

The same gateway as the HTTP/1.1 tests (tests/gateway/conftest.py), spoken to by httpx's
HTTP/2 client and, for the attacks, by a raw ``h2`` client that sends what it likes.
"""

from __future__ import annotations

import asyncio
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx

from tests.gateway.conftest import GatewayUnderTest


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def h2_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(http1=False, http2=True, timeout=10)


async def test_a_request_over_h2c_runs_the_same_pipeline_and_is_forwarded(
    gw: GatewayUnderTest,
) -> None:
    async with h2_client() as client:
        resp = await client.get(gw.url + "/api/v1/echo/x?q=1", headers={"x-probe": "yes"})
        assert resp.http_version == "HTTP/2"
        assert resp.status_code == 200
        assert resp.headers["x-upstream"] in {"a", "b"}
        assert resp.headers.get("x-request-id")
        # Authentication is the same: a private route without a token is 401 problem+json.
        denied = await client.get(gw.url + "/api/v1/private/x")
        assert denied.status_code == 401
        assert denied.headers["content-type"].startswith("application/problem+json")
        # Unknown route: 404 problem, still over HTTP/2.
        missing = await client.get(gw.url + "/nowhere")
        assert (missing.status_code, missing.http_version) == (404, "HTTP/2")
    echoed = resp.json()
    assert (echoed["method"], echoed["path"], echoed["query"]) == ("GET", "/api/v1/echo/x", "q=1")
    headers = dict(echoed["headers"])
    assert headers["x-probe"] == "yes"


async def test_a_large_body_passes_under_flow_control(gw: GatewayUnderTest) -> None:
    body = bytes(range(256)) * 256  # the route's limit, 64 KiB: more than a stream's window
    async with h2_client() as client:
        resp = await client.post(gw.url + "/api/v1/echo/upload", content=body)
        assert resp.status_code == 200, resp.text
        assert resp.json()["received"] == len(body)
        over = await client.post(gw.url + "/api/v1/echo/upload", content=body + b"x")
        assert over.status_code == 413  # the route's bound holds over HTTP/2 too


async def test_a_hundred_concurrent_streams_on_one_connection(gw: GatewayUnderTest) -> None:
    assert gw.server is not None
    async with h2_client() as client:
        answers = await asyncio.gather(
            *(client.get(gw.url + f"/api/v1/echo/n{i}") for i in range(100))
        )
        assert [r.status_code for r in answers] == [200] * 100
        assert len(gw.server.h2_connections) == 1  # all of them on one connection
        [conn] = gw.server.h2_connections
        assert conn.requests == 100


async def _open(
    port: int,
) -> tuple[h2.connection.H2Connection, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    await writer.drain()
    return conn, reader, writer


def _request(conn: h2.connection.H2Connection, port: int, path: str, *, end: bool = True) -> int:
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(
        stream_id,
        [
            (":method", "GET"),
            (":path", path),
            (":scheme", "http"),
            (":authority", f"127.0.0.1:{port}"),
        ],
        end_stream=end,
    )
    return stream_id


async def _events_until_closed(
    conn: h2.connection.H2Connection, reader: asyncio.StreamReader, seconds: float
) -> list[h2.events.Event]:
    events: list[h2.events.Event] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
        except TimeoutError:
            break
        if not data:
            break
        try:
            events += conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            break
    return events


async def test_a_rapid_reset_flood_is_cut_off_and_costs_nothing_lasting(
    gw: GatewayUnderTest,
) -> None:
    """CVE-2023-44487: open a stream, reset it at once, thousands of times."""
    assert gw.server is not None
    port = int(gw.url.rsplit(":", 1)[1])
    before = sum(state.requests for state in gw.upstreams.values())
    rss_before, cpu_before = _rss(), time.process_time()
    conn, reader, writer = await _open(port)
    for _ in range(2000):
        stream_id = _request(conn, port, "/api/v1/echo/flood", end=True)
        conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
    writer.write(conn.data_to_send())
    await writer.drain()
    events = await _events_until_closed(conn, reader, 5)
    goaway = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert goaway, events[-5:]
    assert goaway[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    writer.close()
    # The flooded connection is gone, nothing of its streams runs on, and others are served.
    deadline = time.monotonic() + 5
    while gw.server.h2_connections and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not gw.server.h2_connections
    reached = sum(state.requests for state in gw.upstreams.values()) - before
    assert reached <= 400, reached  # cancelled as they came: most never left the gateway
    # Bounded: the whole flood (client and gateway are this process) in well under the
    # CPU second a stream each would take, and no memory kept.
    cpu = time.process_time() - cpu_before
    grown = _rss() - rss_before
    print(f"rapid reset: 2000 streams, {cpu:.2f} s CPU, RSS +{grown / 1e6:.1f} MB")  # noqa: T201
    assert cpu < 10
    assert grown < 30_000_000
    async with h2_client() as client:
        assert (await client.get(gw.url + "/api/v1/echo/after")).status_code == 200


async def test_more_streams_than_advertised_close_the_connection(gw: GatewayUnderTest) -> None:
    port = int(gw.url.rsplit(":", 1)[1])
    conn, reader, writer = await _open(port)
    # 101 streams that never end (each holds a stream open), sent before reading the
    # server's SETTINGS: the client library does not know the limit, the server does.
    for _ in range(101):
        stream_id = conn.get_next_available_stream_id()
        conn.send_headers(
            stream_id,
            [(":method", "POST"), (":path", "/api/v1/echo/hold"), (":scheme", "http"),
             (":authority", "x")],
            end_stream=False,
        )  # fmt: skip
        writer.write(conn.data_to_send())
    await writer.drain()
    events = await _events_until_closed(conn, reader, 5)
    refused_code = h2.errors.ErrorCodes.REFUSED_STREAM
    refused = [
        e for e in events
        if isinstance(e, h2.events.ConnectionTerminated)
        or (isinstance(e, h2.events.StreamReset) and e.error_code == refused_code)
    ]  # fmt: skip
    assert refused, events[-5:]
    writer.close()


async def test_an_oversized_header_list_is_refused(gw: GatewayUnderTest) -> None:
    async with h2_client() as client:
        try:
            resp = await client.get(gw.url + "/api/v1/echo/x", headers={"x-big": "v" * 70_000})
        except httpx.HTTPError:
            return  # the connection was closed: refused
        assert resp.status_code in {400, 431}, resp.status_code
