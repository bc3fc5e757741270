"""``make bench-service``: what edgelib's service stack costs, against bare Starlette.

One trivial authenticated endpoint, ``GET /api/v1/bench/me``, answered twice in one run:

- ``full``: on the app of ``create_service_app`` (FastAPI, the request-context
  middleware with its access log and RED metrics, problem handlers, tracing set up
  with no exporter), the caller taken from the ``CurrentUser`` dependency, served
  the way ``edgelib.runner`` serves a service (uvicorn, heap frozen after start-up);
  the endpoint is answered from edgelib's fast route table (``edgelib.fastroutes``);
- ``router``: the same app with ``fast_routes=False``, every request through FastAPI's
  router and dependency solver (the stack as it was before that table);
- ``bare``: on a bare Starlette app with uvicorn, the handler doing the same
  authentication work by hand (gateway signature verified, nonce recorded in the
  same in-process replay cache, identity decoded) and answering the same JSON.

Every request carries a fresh gateway signature (a nonce is accepted once), made by
this script before each wrk run and cycled through by wrk's Lua script. wrk has CPU 0,
the server under test CPU 1 alone. Rounds are interleaved (full, router, bare, full...)
and each figure is the median round. CPU per request is the server process's
utime + stime (``/proc/PID/stat``) over the measured interval, divided by requests.

    python bench/service.py [--rounds 3] [--seconds 5] [--concurrency 16]
                            [--json bench/results/service.json]
    python bench/service.py serve {full,router,bare} PORT   (the server side, used by the above)

``--instructions`` adds a figure that a busy machine does not move: each app is called
in-process (no server, no sockets) for ``--inprocess-requests`` signed requests under
callgrind, instrumentation on only around those requests, and the instructions per
request of the two apps are compared. It counts what the stack itself costs, without
uvicorn's share (the same for both apps).

    python bench/service.py inprocess {full,router,bare} N   (one counted run, used by the above)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic_settings import SettingsConfigDict

from edgelib.app import create_service_app
from edgelib.deps import CurrentUser
from edgelib.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
PATH = "/api/v1/bench/me"
USER_FIELDS = {
    "user_id": "0b0c6a52-3f3c-4a1f-9c43-2f3f3a1e9b11",
    "username": "alice",
    "region": "east",
    "session_id": "s-1",
    "client_type": "web",
}

WRK_SCRIPT = """
local reqs = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do
    reqs[#reqs + 1] = (line:gsub("\\t", "\\r\\n"))
  end
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
done = function(summary, latency, requests)
  io.write(string.format(
    '\\nWRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


# --- the two servers --------------------------------------------------------------------


def full_app(*, fast_routes: bool = True) -> Any:
    class BenchSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="BENCH_", extra="ignore")
        service_name: ClassVar[str] = "bench"

    settings = BenchSettings(var_dir=Path(tempfile.mkdtemp(prefix="edge-bench-")), port=0)
    app = create_service_app(
        settings, title="bench", api_prefix="/api/v1/bench", fast_routes=fast_routes
    )

    @app.get(PATH)
    async def me(user: CurrentUser) -> dict[str, str]:
        """The caller, as the gateway authenticated them."""
        return {"user_id": user.user_id, "username": user.username, "region": user.region}

    return app


def bare_app() -> Any:
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from edgelib.backends import open_backend
    from edgelib.deps import request_target
    from edgelib.identity import GATEWAY_SERVICE, Identity
    from edgelib.replay import ReplayCache
    from edgelib.settings import DEV_SERVICE_SECRET
    from edgelib.signing import HEADER_IDENTITY, ServiceSigner, SignatureError

    # The same validity as the full app's settings (EDGE_SIGNATURE_MAX_SKEW, 30 s).
    max_skew = float(os.environ.get("EDGE_SIGNATURE_MAX_SKEW", "30"))
    signer = ServiceSigner("bench", DEV_SERVICE_SECRET, max_skew=max_skew)
    backend = open_backend("memory://")
    replay = ReplayCache(backend, "bench", max_skew=max_skew)

    async def me(request: Request) -> Response:
        try:
            caller = signer.verify_request(
                request.method, request_target(request), request.headers, None,
                require_body_digest=False,
            )  # fmt: skip
            if caller.service != GATEWAY_SERVICE:
                raise SignatureError("not the gateway")
            await replay.first_use(caller)
        except SignatureError:
            return JSONResponse({"status": 401}, status_code=401)
        user = Identity.decode(request.headers[HEADER_IDENTITY])
        return JSONResponse(
            {"user_id": user.user_id, "username": user.username, "region": user.region}
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        await backend.close()

    return Starlette(routes=[Route(PATH, me)], lifespan=lifespan)


#: The apps a run compares: the service stack, the same stack with every request left to
#: FastAPI's router (``fast_routes=False``: the stack before edgelib.fastroutes), and
#: bare Starlette.
KINDS = ("full", "router", "bare")


def app_for(kind: str) -> Any:
    if kind == "bare":
        return bare_app()
    return full_app(fast_routes=kind == "full")


def serve(kind: str, port: int) -> None:
    import uvicorn

    from edgelib.runner import freeze_startup_heap

    app = app_for(kind)
    freeze_startup_heap()
    # The same options as edgelib.runner.run_service.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        log_level="warning",
    )


# --- in-process, under callgrind ---------------------------------------------------------


def inprocess(kind: str, count: int) -> None:
    """Call the app's ASGI callable ``count`` times with signed requests (after a warm-up)."""
    import asyncio

    from callgrind import instrument

    from edgelib.identity import Identity
    from edgelib.settings import DEV_SERVICE_SECRET
    from edgelib.signing import ServiceSigner

    app = app_for(kind)
    gateway = ServiceSigner("gateway-api", DEV_SERVICE_SECRET)
    identity = Identity(**USER_FIELDS).encode()
    warm_up = 200  # a multiple of the batch below

    def scope(now: float) -> dict[str, Any]:
        signed = gateway.sign("GET", PATH, None, destination="bench", identity=identity, now=now)
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": PATH, "raw_path": PATH.encode(),
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000), "state": {},
            "headers": [(b"host", b"127.0.0.1"),
                        *((k.encode(), v.encode()) for k, v in signed.items())],
        }  # fmt: skip

    async def run() -> None:
        startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await startup.put({"type": "lifespan.startup"})
        lifespan = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        life = asyncio.create_task(app(lifespan, startup.get, events.put))
        started = await events.get()
        assert started["type"] == "lifespan.startup.complete", started
        statuses: list[int] = []
        counting = False

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and counting:
                statuses.append(message["status"])

        # Signatures are valid for 30 s and callgrind is slow: sign each batch just before
        # it is sent, with counting off.
        # Only the counted requests' answers are checked: under callgrind on a loaded
        # machine the first batch (the app's first request builds its middleware and route
        # table) can outlive its signatures.
        batch = 100
        for first in range(0, warm_up + count, batch):
            now = time.time()
            scopes = [scope(now) for _ in range(min(batch, warm_up + count - first))]
            counted = counting = first >= warm_up
            if counted:
                instrument("on")
            for one in scopes:
                await app(one, receive, send)
            if counted:
                instrument("off")
        if set(statuses) != {200}:
            raise SystemExit(f"{kind}: answers other than 200: {sorted(set(statuses))}")
        await startup.put({"type": "lifespan.shutdown"})
        await events.get()
        await life

    asyncio.run(run())


def instructions(kind: str, requests: int) -> int:
    """Instructions callgrind counted for ``requests`` in-process requests to ``kind``."""
    from callgrind import count

    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "BENCH_", "OTEL_"))}
    env["OTEL_SDK_DISABLED"] = "true"
    # Under callgrind on a loaded machine, switching counting on (callgrind_control) can
    # take longer than a signature's usual 30 s; checking one costs the same either way.
    env["EDGE_SIGNATURE_MAX_SKEW"] = "3600"
    return count(Path(__file__), ["inprocess", kind, str(requests)], env=env, cwd=ROOT)


# --- the load side ----------------------------------------------------------------------


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pins() -> tuple[list[str], list[str]]:
    """(load generator, server): CPU 0 and CPU 1 when there are two and taskset."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", "0"], ["taskset", "-c", "1"]
    return [], []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def signed_requests(path: Path, count: int, port: int) -> None:
    """``count`` raw GET requests, each with its own gateway signature (tabs for CRLF)."""
    from edgelib.identity import Identity
    from edgelib.settings import DEV_SERVICE_SECRET
    from edgelib.signing import ServiceSigner

    gateway = ServiceSigner("gateway-api", DEV_SERVICE_SECRET)
    identity = Identity(**USER_FIELDS).encode()
    now = time.time()
    lines = []
    for _ in range(count):
        headers = gateway.sign("GET", PATH, None, destination="bench", identity=identity, now=now)
        head = f"GET {PATH} HTTP/1.1\tHost: 127.0.0.1:{port}\t"
        head += "".join(f"{k}: {v}\t" for k, v in headers.items())
        lines.append(head + "\t")
    path.write_text("\n".join(lines) + "\n")


def run_wrk(
    pin: list[str], port: int, script: Path, requests: Path, seconds: int, concurrency: int
) -> dict[str, Any]:
    argv = [*pin, "wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency"]
    argv += ["-s", str(script), f"http://127.0.0.1:{port}{PATH}", "--", str(requests)]
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no result:\n{out}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    raw["errors"] = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return raw


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 900  # a busy machine imports FastAPI slowly
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


def check_answer(port: int, run: Path) -> None:
    """One signed request by hand: the endpoint answers 200 with the caller."""
    sample = run / "one.txt"
    signed_requests(sample, 1, port)
    lines = sample.read_text().strip("\n").split("\t")
    headers = dict(ln.split(": ", 1) for ln in lines[2:] if ln)
    req = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", headers=headers)
    with urllib.request.urlopen(req, timeout=5) as resp:
        body = json.loads(resp.read())
    if body.get("username") != USER_FIELDS["username"]:
        raise SystemExit(f"unexpected answer {body}")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: make bench-tools")
    pin_load, pin_server = pins()
    run = Path(tempfile.mkdtemp(prefix="edge-bench-service-"))
    script = run / "signed.lua"
    script.write_text(WRK_SCRIPT)
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "BENCH_", "OTEL_"))}
    env["OTEL_SDK_DISABLED"] = "true"
    rounds: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    try:
        for kind in KINDS:
            port = free_port()
            log = run / f"{kind}.log"
            with log.open("ab") as out:
                proc = subprocess.Popen(
                    [*pin_server, sys.executable, __file__, "serve", kind, str(port)],
                    cwd=ROOT, env=env, stdout=out, stderr=out,
                )  # fmt: skip
            servers[kind] = (proc, port)
            wait_ready(port, proc, log)
            check_answer(port, run)
        # Enough signatures for the fastest server; a nonce reused is a 401 (an error).
        count = max(20_000, args.seconds * 15_000)
        for n in range(args.rounds):
            for kind, (proc, port) in servers.items():
                requests = run / f"requests-{kind}.txt"
                # Enough for a 1 s warm-up of the fastest server: with fewer, a fast server
                # reuses nonces in the warm-up (quick 401s) and its pace is misread.
                signed_requests(requests, 20_000, port)
                warm = run_wrk(pin_load, port, script, requests, 1, args.concurrency)
                if warm["errors"]:
                    say(f"warm-up {kind}: {warm['errors']} errors (reused nonces?)")
                # Signatures are valid for 30 s: make only what the run can use (twice the
                # warm-up's pace), so signing on a busy machine does not outlast them.
                pace = warm["requests"] / max(warm["duration_us"] / 1e6, 0.1)
                signed_requests(
                    requests, min(count, max(2_000, int(2 * pace * args.seconds))), port
                )
                before = cpu_seconds(proc.pid)
                raw = run_wrk(pin_load, port, script, requests, args.seconds, args.concurrency)
                cpu = cpu_seconds(proc.pid) - before
                result = {
                    "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
                    "requests": raw["requests"],
                    "errors": raw["errors"],
                    "p50_ms": round(raw["p50_us"] / 1000, 3),
                    "p99_ms": round(raw["p99_us"] / 1000, 3),
                    "cpu_ms_per_request": round(1000 * cpu / max(1, raw["requests"]), 4),
                }
                rounds[kind].append(result)
                say(f"round {n + 1} {kind:4}: {json.dumps(result)}")
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(run, ignore_errors=True)
    summary: dict[str, Any] = {}
    for kind, results in rounds.items():
        median_round = sorted(results, key=lambda r: r["rps"])[len(results) // 2]
        summary[kind] = {
            **median_round,
            "cpu_ms_per_request": statistics.median(r["cpu_ms_per_request"] for r in results),
        }
    full, router, bare = summary["full"], summary["router"], summary["bare"]
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "method": {
            "endpoint": f"GET {PATH} (gateway-signed identity, nonce recorded)",
            "load": f"wrk -t1 -c{args.concurrency}, {args.seconds} s after a 1 s warm-up",
            "rounds": args.rounds,
            "pinning": "wrk on CPU 0, server on CPU 1" if pin_load else "none",
        },
        "full": full,
        "router": router,
        "bare": bare,
        "rounds": rounds,
        "ratio": round(full["rps"] / bare["rps"], 3) if bare["rps"] else 0.0,
        "ratio_router": round(router["rps"] / bare["rps"], 3) if bare["rps"] else 0.0,
        "targets": {"ratio": 0.7, "cpu_ms_per_request": 0.25},
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "inprocess":
        inprocess(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--instructions", action="store_true",
        help="also count in-process instructions per request under callgrind (quiet-proof)",
    )  # fmt: skip
    parser.add_argument("--inprocess-requests", type=int, default=1000)
    parser.add_argument(
        "--instructions-only", action="store_true", help="only the callgrind figure (no wrk)"
    )
    args = parser.parse_args()
    counted: dict[str, Any] = {}
    if args.instructions or args.instructions_only:
        per_request = {}
        for kind in KINDS:
            total = instructions(kind, args.inprocess_requests)
            per_request[kind] = round(total / args.inprocess_requests)
            say(f"in-process {kind}: {per_request[kind]:,} instructions/request")
        counted = {
            "requests": args.inprocess_requests,
            "full": per_request["full"],
            "router": per_request["router"],
            "bare": per_request["bare"],
            "ratio_bare_to_full": round(per_request["bare"] / per_request["full"], 3),
            "ratio_bare_to_router": round(per_request["bare"] / per_request["router"], 3),
        }
        say(
            f"in-process instructions bare/full: {counted['ratio_bare_to_full']:.3f} "
            f"(bare/router: {counted['ratio_bare_to_router']:.3f})"
        )
    if args.instructions_only:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"instructions": counted}, indent=2) + "\n")
        return
    result = measure(args)
    if counted:
        result["instructions"] = counted
    full, bare = result["full"], result["bare"]
    say("")
    say("| server | req/s | p50 ms | p99 ms | CPU ms/request | errors |")
    say("|---|---:|---:|---:|---:|---:|")
    labels = (
        ("edgelib service stack", full),
        ("same, FastAPI router only (fast_routes=False)", result["router"]),
        ("bare Starlette", bare),
    )
    for kind, row in labels:
        say(
            f"| {kind} | {row['rps']:.0f} | {row['p50_ms']} | {row['p99_ms']} "
            f"| {row['cpu_ms_per_request']:.3f} | {row['errors']} |"
        )
    say(f"\nratio full/bare req/s: {result['ratio']:.2f} (target >= 0.7; router only "
        f"{result['ratio_router']:.2f}); "
        f"full CPU {full['cpu_ms_per_request']:.3f} ms/request (target <= 0.25)")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
