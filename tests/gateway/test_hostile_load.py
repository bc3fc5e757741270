"""Floods against a gateway process: its memory and its other clients stay unharmed.

``python -m gateway_api`` (one worker, its default limits) runs over an upstream
process. Each test sends real bytes from raw sockets and reads the gateway's resident
set size (``/proc/<pid>/status``) while it does:

- 10 s of pipelined requests from a client that never reads;
- 10 s of WebSocket frames into a tunnel by a client that never reads;
- 2,000 idle connections held open while another client's requests are timed.
"""

from __future__ import annotations

import resource
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import WorkerGateway, worker_gateway

pytestmark = pytest.mark.timeout(300)

ROUTES = """
[defaults]
read_timeout = 10.0
total_timeout = 20.0

[[routes]]
prefix = "/api/v1/echo"
service = "echo"
access = "public"

[[routes]]
path = "/api/v1/echo/ws"
service = "echo"
access = "public"
websocket = true
"""
MB = 2**20
FLOOD_SECONDS = 10.0
IDLE_CONNECTIONS = 2000


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerGateway]:
    with worker_gateway(
        tmp_path_factory.mktemp("hostile-load"),
        ROUTES,
        workers=1,
        env={"GATEWAY_KEEP_ALIVE_TIMEOUT": "300"},
        upstream_app=("--factory", "tests.gateway.upstream:hostile_upstream"),
    ) as gw:
        yield gw


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def gateway_pid(gw: WorkerGateway) -> int:
    return int(str(gw.workers[0]["pid"]))


def warm_up(gw: WorkerGateway) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{gw.public}", timeout=10) as client:
        for _ in range(300):
            assert client.get("/api/v1/echo/x").status_code == 200


def non_reader(port: int) -> socket.socket:
    """A client socket with a tiny receive buffer, that the test never reads from."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(0.1)
    return sock


def flood(sock: socket.socket, payload: bytes, pid: int, seconds: float) -> tuple[int, int]:
    """Send ``payload`` again and again for ``seconds``; (bytes sent, peak RSS)."""
    sent = 0
    peak = rss(pid)
    end = time.monotonic() + seconds
    next_sample = 0.0
    while (now := time.monotonic()) < end:
        try:
            sent += sock.send(payload)
        except TimeoutError:
            pass  # the gateway stopped reading: the kernel buffers are full
        except OSError:
            break  # the gateway dropped the connection
        if now >= next_sample:
            peak = max(peak, rss(pid))
            next_sample = now + 0.2
    return sent, max(peak, rss(pid))


def test_pipelined_requests_from_a_client_that_never_reads_grow_rss_by_under_20_mb(
    gateway: WorkerGateway,
) -> None:
    pid = gateway_pid(gateway)
    warm_up(gateway)
    before = rss(pid)
    sock = non_reader(gateway.public)
    request = b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        sent, peak = flood(sock, request * 100, pid, FLOOD_SECONDS)
    finally:
        sock.close()
    growth = peak - before
    sys.stderr.write(
        f"\n[pipelining] {sent / MB:.1f} MiB of requests ({sent // len(request)}) in "
        f"{FLOOD_SECONDS:.0f} s; gateway RSS {before / MB:.1f} -> peak {peak / MB:.1f} MiB "
        f"(+{growth / MB:.1f})\n"
    )
    assert growth < 20 * MB
    with httpx.Client(timeout=5) as client:  # and it still serves everyone else
        assert client.get(f"http://127.0.0.1:{gateway.public}/api/v1/echo/x").status_code == 200


def ws_frames(count: int) -> bytes:
    payload = b"f" * 125
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return (bytes([0x81, 0x80 | len(payload)]) + mask + masked) * count


def test_a_websocket_flood_from_a_client_that_never_reads_stays_bounded(
    gateway: WorkerGateway,
) -> None:
    pid = gateway_pid(gateway)
    warm_up(gateway)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gateway.public))
    sock.sendall(
        b"GET /api/v1/echo/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    sock.settimeout(5)
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: nothing of the echoes is read
    assert head.startswith(b"HTTP/1.1 101"), head
    sock.settimeout(0.1)
    before = rss(pid)
    try:
        sent, peak = flood(sock, ws_frames(64), pid, FLOOD_SECONDS)
    finally:
        sock.close()
    growth = peak - before
    sys.stderr.write(
        f"\n[websocket] {sent / MB:.1f} MiB of frames in {FLOOD_SECONDS:.0f} s; gateway RSS "
        f"{before / MB:.1f} -> peak {peak / MB:.1f} MiB (+{growth / MB:.1f})\n"
    )
    assert sent < 64 * MB  # the tunnel pushed back: the flood was stopped, not swallowed
    assert growth < 20 * MB


REQUEST = b"GET /api/v1/echo/x HTTP/1.1\r\nHost: x\r\n\r\n"


def answer(sock: socket.socket) -> bytes:
    """One whole response (Content-Length framed) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head


def latencies(port: int) -> list[float]:
    """400 requests on one kept-alive connection, then 100 on a new connection each."""
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for _ in range(400):
            started = time.perf_counter()
            sock.sendall(REQUEST)
            assert answer(sock).startswith(b"HTTP/1.1 200")
            times.append(time.perf_counter() - started)
    for _ in range(100):
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(REQUEST)
            assert answer(sock).startswith(b"HTTP/1.1 200")
        times.append(time.perf_counter() - started)
    return sorted(times)


def describe(times: list[float]) -> str:
    p50, p99 = times[len(times) // 2], times[int(len(times) * 0.99) - 1]
    return f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms"


def test_with_2000_idle_connections_open_another_client_is_served_with_p99_under_100_ms(
    gateway: WorkerGateway,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = IDLE_CONNECTIONS + 512
    if soft < needed:
        assert hard >= needed, f"open-files hard limit {hard} < {needed}: raise it (ulimit -Hn)"
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    warm_up(gateway)
    alone = latencies(gateway.public)  # the same requests without the idle crowd
    idle = [
        socket.create_connection(("127.0.0.1", gateway.public)) for _ in range(IDLE_CONNECTIONS)
    ]
    try:
        time.sleep(1.0)
        times = latencies(gateway.public)
        p99 = times[int(len(times) * 0.99) - 1]
        sys.stderr.write(
            f"\n[idle] 500 requests alone: {describe(alone)}; with {IDLE_CONNECTIONS} idle "
            f"connections open: {describe(times)}\n"
        )
        assert p99 < 0.1
        # The idle connections were held, not dropped: some of them are served now.
        for sock in idle[:: IDLE_CONNECTIONS // 20]:
            sock.settimeout(5)
            sock.sendall(REQUEST)
            assert answer(sock).startswith(b"HTTP/1.1 200")
    finally:
        for sock in idle:
            sock.close()
