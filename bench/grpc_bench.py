"""``make bench-grpc``: gRPC and HTTP/2 through the gateway, as ratios measured in one run.

1. ``grpc-direct`` / ``grpc-gateway``: a grpcio (asyncio) client making unary
   ``edge.money.v1.Wallet/Balance`` calls, ``--concurrency`` at a time on one channel,
   to a grpcio server directly, then through the gateway (a public gRPC route: route
   match, rate-limit and quota checks, balancing, the HTTP/2 upstream client, trailers).
   The ratio is gateway calls/s over direct calls/s.
2. ``h1-keepalive`` / ``h2-multiplexed``: GETs through the gateway to a tiny HTTP/1.1
   upstream with h2load (nghttp2-client, installed with apt if missing): ``--h1`` over
   ``--concurrency`` keep-alive connections, then one h2c connection carrying
   ``--concurrency`` streams at once.

Every process (the gateway with one worker, the upstreams, the clients) runs on this
machine at once; rounds alternate the two sides of each ratio and the figure is the
median round. The load average before and after is recorded: on a shared machine the
absolute numbers move, the ratios less.

    python bench/grpc_bench.py --json bench/results/grpc.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "app/sv-money"), str(ROOT / "libs")]

BODY = b'{"ok":true,"service":"bench","items":[1,2,3]}'
HTTP_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    b"Connection: keep-alive\r\n\r\n%s" % (len(BODY), BODY)
)
ROUTES = """
[[routes]]
prefix = "/api/v1/bench"
service = "bench-http"
access = "public"

[[grpc_routes]]
prefix = "/edge.money.v1.Wallet"
service = "bench"
access = "public"

[[grpc_routes]]
path = "/edge.money.v1.Wallet/Balance"
service = "bench"
access = "public"
idempotent = true
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the upstreams (run as this script's subprocesses) --------------------------------


class _HttpUpstream(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.transport.write(HTTP_ANSWER)


async def serve_http(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_HttpUpstream, "127.0.0.1", port)
    print("ready", flush=True)  # noqa: T201
    await server.serve_forever()


async def serve_grpc(port: int) -> None:
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from sv_money.rpc.gen import wallet_pb2, wallet_pb2_grpc

    reply = wallet_pb2.BalanceReply(
        accounts=[wallet_pb2.Account(currency="USD", balance=10_000, available=10_000)]
    )

    class Wallet(wallet_pb2_grpc.WalletServicer):
        async def Balance(self, request: Any, context: Any) -> Any:
            return reply

    server = grpc.aio.server()
    wallet_pb2_grpc.add_WalletServicer_to_server(Wallet(), server)  # type: ignore[no-untyped-call]
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await checks.set("", health_pb2.HealthCheckResponse.SERVING)
    print("ready", flush=True)  # noqa: T201
    await server.wait_for_termination()


# -- the clients --------------------------------------------------------------------


async def grpc_round(target: str, seconds: float, concurrency: int) -> dict[str, float]:
    """Unary calls/s and latency percentiles from ``concurrency`` callers on one channel."""
    import grpc

    from sv_money.rpc.gen import wallet_pb2, wallet_pb2_grpc

    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        wallet = wallet_pb2_grpc.WalletStub(channel)  # type: ignore[no-untyped-call]
        request = wallet_pb2.BalanceRequest()
        await wallet.Balance(request, timeout=5)  # connected and warm
        stop = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                started = time.perf_counter()
                try:
                    await wallet.Balance(request, timeout=5)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        took = time.perf_counter() - began
    latencies.sort()
    return {
        "calls_per_s": round(len(latencies) / took, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "errors": errors,
    }


def h2load_round(url: str, requests: int, concurrency: int, *, h1: bool) -> dict[str, Any]:
    """h2load's req/s: HTTP/1.1 keep-alive over ``concurrency`` connections, or one
    HTTP/2 connection with ``concurrency`` streams."""
    args = ["h2load", "-n", str(requests)]
    args += ["--h1", "-c", str(concurrency)] if h1 else ["-c", "1", "-m", str(concurrency)]
    done = subprocess.run([*args, url], capture_output=True, text=True, timeout=300)
    found = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", done.stdout)
    status = re.search(r"status codes: (\d+) 2xx", done.stdout)
    if found is None or status is None:
        raise SystemExit(f"h2load failed:\n{done.stdout}\n{done.stderr}")
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", done.stdout)
    return {
        "req_per_s": float(found.group(1)),
        "ok": int(status.group(1)),
        "mean_latency": mean.group(1) if mean else "",
    }


# -- the run ------------------------------------------------------------------------


class Processes:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: list[str], env: dict[str, str] | None = None, *, talks: bool = True
    ) -> subprocess.Popen[bytes]:
        """Start ``argv``; ``talks``: its first line (``ready``) is read, else its output
        (the gateway's logs) is dropped."""
        out = subprocess.PIPE if talks else subprocess.DEVNULL
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def wait_ready(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        raise SystemExit("an upstream did not start")


def wait_port(port: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"port {port} did not open")


def gateway_native() -> str:
    """Whether the gateway ran its compiled modules (``python -m gateway_api`` activates
    the build the same way; the gRPC proxy itself is plain Python either way)."""
    sys.path.insert(0, str(ROOT / "app/gateway-api"))
    from gateway_api import native

    return native.status if native.activate() else f"plain Python: {native.status}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/grpc.json")
    parser.add_argument("--seconds", type=float, default=5.0, help="per gRPC round")
    parser.add_argument("--requests", type=int, default=20_000, help="per h2load round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve-http", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-grpc", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_http:
        asyncio.run(serve_http(args.serve_http))
        return
    if args.serve_grpc:
        asyncio.run(serve_grpc(args.serve_grpc))
        return
    if shutil.which("h2load") is None:
        raise SystemExit("h2load is missing: apt-get install nghttp2-client")
    ports = {name: free_port() for name in ("grpc", "http", "public", "admin")}
    procs = Processes()
    load_before = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            topology = Path(tmp) / "topology.toml"
            topology.write_text(
                '[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n'
                f'[[services]]\nname = "bench-http"\ninstances = [{{ port = {ports["http"]} }}]\n'
                f'[[services]]\nname = "bench"\ninstances = [{{ port = {ports["http"]} }}]\n'
                f'[[services]]\nname = "bench-grpc"\ninstances = [{{ port = {ports["grpc"]} }}]\n'
            )
            routes = Path(tmp) / "routes.toml"
            routes.write_text(ROUTES)
            me = [sys.executable, str(Path(__file__).resolve())]
            wait_ready(procs.start([*me, "--serve-grpc", str(ports["grpc"])]))
            wait_ready(procs.start([*me, "--serve-http", str(ports["http"])]))
            env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "GATEWAY_"))}
            env.update(
                {
                    "GATEWAY_PORT": str(ports["public"]),
                    "GATEWAY_ADMIN_PORT": str(ports["admin"]),
                    "GATEWAY_TOPOLOGY": str(topology),
                    "GATEWAY_ROUTES": str(routes),
                    "GATEWAY_WORKERS": "1",
                    "EDGE_VAR_DIR": tmp,
                }
            )
            procs.start([sys.executable, "-m", "gateway_api"], env, talks=False)
            wait_port(ports["public"])
            time.sleep(2.0)  # the first health probes
            results = run(args, ports)
    finally:
        procs.stop()
    load_after = os.getloadavg()
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "gateway_code": gateway_native(),
        "gateway_workers": 1,
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        **results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))  # noqa: T201


def run(args: argparse.Namespace, ports: dict[str, int]) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, Any]]] = {
        "grpc-direct": [],
        "grpc-gateway": [],
        "h1-keepalive": [],
        "h2-multiplexed": [],
    }
    url = f"http://127.0.0.1:{ports['public']}/api/v1/bench/x"
    for _ in range(args.rounds):
        for name, target in (
            ("grpc-direct", f"127.0.0.1:{ports['grpc']}"),
            ("grpc-gateway", f"127.0.0.1:{ports['public']}"),
        ):
            rounds[name].append(asyncio.run(grpc_round(target, args.seconds, args.concurrency)))
        rounds["h1-keepalive"].append(h2load_round(url, args.requests, args.concurrency, h1=True))
        rounds["h2-multiplexed"].append(
            h2load_round(url, args.requests, args.concurrency, h1=False)
        )
    median = {
        "grpc-direct": statistics.median(r["calls_per_s"] for r in rounds["grpc-direct"]),
        "grpc-gateway": statistics.median(r["calls_per_s"] for r in rounds["grpc-gateway"]),
        "h1-keepalive": statistics.median(r["req_per_s"] for r in rounds["h1-keepalive"]),
        "h2-multiplexed": statistics.median(r["req_per_s"] for r in rounds["h2-multiplexed"]),
    }
    return {
        "rounds_detail": rounds,
        "median": median,
        "ratios": {
            "grpc_gateway_over_direct": round(median["grpc-gateway"] / median["grpc-direct"], 3),
            "h2_multiplexed_over_h1_keepalive": round(
                median["h2-multiplexed"] / median["h1-keepalive"], 3
            ),
        },
    }


if __name__ == "__main__":
    main()
