"""``make profile-gateway``: where one gateway worker spends its CPU under load.

Starts the same stack as ``make bench-gateway`` (nginx upstream and control-plane
stub, one gateway worker pinned to CPU 1), puts wrk load on one route, samples the
worker with py-spy meanwhile, and prints the functions with the most samples: by
their own time and including what they call. The raw folded stacks are kept under
``var/bench/`` for flame graphs (``py-spy``'s ``--format speedscope`` shows the same).

    python bench/gateway_profile.py --route pipeline --seconds 15
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from gateway_bench import (  # noqa: E402
    Stack,
    cpus,
    free_port,
    make_credentials,
    run_wrk,
    say,
    start_gateway,
    start_nginxes,
    wait_http,
    write_gateway_files,
    wrk_script,
)

ROUTES = {"public": "/bench/public/item", "pipeline": "/bench/private/item"}


def summarize(folded: Path, top: int) -> str:
    """Own and inclusive sample counts per function from py-spy's folded stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        total += count
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    out = [f"{total} samples"]
    for title, counter in (("own time", own), ("including callees", inclusive)):
        out.append(f"\n-- {title} --")
        for frame, count in counter.most_common(top):
            out.append(f"{100 * count / total:6.1f}%  {frame}")
    return "\n".join(out)


def _short(frame: str) -> str:
    # py-spy frames look like "function (path/to/file.py:123)"; keep file:function.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, _line = where.rpartition(":")
    parts = Path(path).parts
    return f"{'/'.join(parts[-2:])}:{name}" if parts else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--route", choices=sorted(ROUTES), default="pipeline")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--redis", action="store_true", help="the gateway's backend on Redis")
    parser.add_argument(
        "--perf",
        action="store_true",
        help="sample with Linux perf instead of py-spy: C symbols, so it sees inside the "
        "mypyc-compiled modules (py-spy sees their Python frames only with GATEWAY_NATIVE=0)",
    )
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "redis-server"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (make bench-tools installs it)")
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit("py-spy is missing from the virtual environment (make venv)")
    pin_load, pin_srv = cpus()
    run = ROOT / "var" / "bench" / f"profile-{time.strftime('%Y%m%d-%H%M%S')}"
    run.mkdir(parents=True)
    stack = Stack(run)
    for name in ("upstream", "control", "nginx-proxy", "redis", "gateway", "gateway-admin"):
        stack.ports[name] = free_port()
    creds = make_credentials()
    try:
        start_nginxes(stack, creds, pin_load, pin_srv)
        redis_url = None
        if args.redis:
            stack.start(
                "redis",
                [*pin_load, "redis-server", "--port", str(stack.ports["redis"]), "--save", "",
                 "--appendonly", "no", "--bind", "127.0.0.1"],
            )  # fmt: skip
            redis_url = f"redis://127.0.0.1:{stack.ports['redis']}/0"
        topology, routes = write_gateway_files(stack)
        wait_http(f"http://127.0.0.1:{stack.ports['upstream']}/")
        start_gateway(stack, "gateway", pin_srv, topology, routes, redis_url)
        wait_http(f"http://127.0.0.1:{stack.ports['gateway-admin']}/readyz")
        url = f"http://127.0.0.1:{stack.ports['gateway']}{ROUTES[args.route]}"
        script = wrk_script(run, creds.tokens if args.route == "pipeline" else None)
        pid = stack.procs["gateway"].pid
        run_wrk(pin_load, url, args.concurrency, 2, script, None)  # warm-up
        folded = run / "gateway.folded"
        perf_data = run / "perf.data"
        if args.perf:
            sampler = subprocess.Popen(
                ["perf", "record", "-g", "-F", str(args.rate), "-p", str(pid), "-o", str(perf_data),
                 "--", "sleep", str(args.seconds)],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )  # fmt: skip
        else:
            sampler = subprocess.Popen(
                [str(spy), "record", "--pid", str(pid), "--rate", str(args.rate),
                 "--duration", str(int(args.seconds)), "--format", "raw", "--output",
                 str(folded), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )  # fmt: skip
        result = run_wrk(pin_load, url, args.concurrency, args.seconds, script, None, pid)
        sampler.wait(timeout=args.seconds + 30)
    finally:
        stack.stop()
    say(
        f"{args.route} c={args.concurrency}: {result['rps']:.0f} req/s, "
        f"p99 {result['p99_ms']} ms, {result['cpu_us_per_request']} us CPU/request "
        "(sampling slows the worker)"
    )
    if args.perf:
        report = subprocess.run(
            ["perf", "report", "-i", str(perf_data), "--stdio", "--no-children",
             "--sort", "dso,symbol", "--percent-limit", "0.4"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        lines = [ln for ln in report.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
        say("\n".join(lines[: args.top]))
        say(f"perf data: {perf_data.relative_to(ROOT)}")
        return
    say(summarize(folded, args.top))
    say(f"folded stacks: {folded.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
