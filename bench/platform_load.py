"""``make bench-platform``: a realistic user mix through the gateway of a whole stack.

Starts the local stack (``edgectl up``: gateway, global services, two regions) on
PostgreSQL and Redis (bench/stack.py), makes an admin and ``--users`` accounts (half per
region, each topped up), then runs Locust headless (bench/locustfile.py: the mix) for
``--seconds``, while every process's CPU time is read from ``/proc``. Reports per
operation: requests/s, p50 and p99, failures; the CPU of each process in % of one core;
and the process that saturates first (the busiest: a Python process serves on one core).
Writes bench/results/platform.json and the chart bench/results/platform.png.

    python bench/platform.py [--users 40] [--seconds 60] [--spawn-rate 10]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import (
    ROOT,
    admin_token,
    cpu_seconds,
    cpu_shares,
    load_average,
    make_accounts,
    running_stack,
    say,
)

RESULTS = ROOT / "bench" / "results"


def run_locust(
    host: str, accounts: Path, users: int, spawn_rate: int, seconds: int, out: Path
) -> Path:
    prefix = out / "locust"
    env = os.environ | {"BENCH_PLATFORM_ACCOUNTS": str(accounts)}
    argv = [
        str(Path(sys.executable).with_name("locust")),
        "-f", str(ROOT / "bench" / "locustfile.py"),
        "--headless", "--only-summary",
        "-u", str(users), "-r", str(spawn_rate), "-t", f"{seconds}s",
        "--host", host, "--csv", str(prefix), "--stop-timeout", "5",
        "--loglevel", "WARNING",
    ]  # fmt: skip
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise SystemExit(f"locust wrote no statistics:\n{result.stdout[-2000:]}{result.stderr}")
    return stats


def read_stats(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows, total = [], {}
    with path.open() as handle:
        for row in csv.DictReader(handle):
            entry = {
                "operation": row["Name"],
                "method": row["Type"],
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": round(float(row["Requests/s"]), 1),
                "p50_ms": float(row["50%"] or 0),
                "p99_ms": float(row["99%"] or 0),
            }
            if row["Name"] == "Aggregated":
                total = entry
            else:
                rows.append(entry)
    rows.sort(key=lambda r: -r["requests"])
    return rows, total


def write_chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["operations"]
    names = [r["operation"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    left.barh(names, [r["p50_ms"] for r in rows], label="p50")
    left.barh(names, [r["p99_ms"] - r["p50_ms"] for r in rows],
              left=[r["p50_ms"] for r in rows], label="p99", alpha=0.6)  # fmt: skip
    left.set_xlabel("ms")
    left.set_title(f"{result['total']['rps']} req/s through the gateway")
    left.legend()
    cpu = list(result["cpu_percent"].items())[:12]
    right.barh([n for n, _ in cpu], [v for _, v in cpu])
    right.axvline(100, color="red", linestyle="--", linewidth=1)
    right.set_xlabel("% of one core")
    right.set_title("CPU per process")
    for axis in (left, right):
        axis.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--spawn-rate", type=int, default=10)
    parser.add_argument("--json", type=Path, default=RESULTS / "platform.json")
    args = parser.parse_args()
    if shutil.which("locust", path=str(Path(sys.executable).parent)) is None:
        raise SystemExit("locust is missing: make venv (it is in the dev group)")
    work = Path(tempfile.mkdtemp(prefix="edge-bench-platform-"))
    with running_stack() as stack, httpx.Client(timeout=30) as client:
        admin = admin_token(client, stack)
        per_region = max(2, (args.users + 1) // 2)
        say(f"making {2 * per_region} accounts")
        accounts = make_accounts(client, stack, per_region, admin, funds=1_000_000)
        accounts_file = work / "accounts.json"
        accounts_file.write_text(json.dumps({"admin": admin, "accounts": accounts}))
        pids = stack.pids()
        say(f"locust: {args.users} users for {args.seconds} s through {stack.public}")
        before, started = cpu_seconds(pids), time.monotonic()
        stats = run_locust(
            stack.public, accounts_file, args.users, args.spawn_rate, args.seconds, work
        )
        elapsed = time.monotonic() - started
        shares = cpu_shares(before, cpu_seconds(pids), elapsed)
        audits = {}
        for region in ("east", "west"):
            report = client.get(
                stack.public + "/api/v1/wallet/audit",
                params={"region": region},
                headers={"authorization": f"Bearer {admin}"},
            )
            audits[region] = report.json().get("ok") if report.status_code == 200 else None
    rows, total = read_stats(stats)
    busiest, busiest_cpu = next(iter(shares.items()))
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": load_average(),
        "machine": {"cpus": os.cpu_count()},
        "method": {
            "stack": "edgectl up (deploy/local/topology.toml) on PostgreSQL and Redis",
            "load": f"locust headless, {args.users} users (spawn {args.spawn_rate}/s), "
            f"{args.seconds} s, 0.05-0.15 s between a user's requests",
            "mix": "60% own reads, 20% transfers (1/3 cross-region), 10% inbox, "
            "9% admin config/log reads, 1% register/login/refresh",
        },
        "operations": rows,
        "total": total,
        "cpu_percent": shares,
        "saturates_first": {"process": busiest, "cpu_percent": busiest_cpu},
        "audit_ok": audits,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    write_chart(result, args.json.with_suffix(".png"))
    shutil.rmtree(work, ignore_errors=True)
    say("")
    say("| operation | req/s | p50 ms | p99 ms | failures |")
    say("|---|---:|---:|---:|---:|")
    for row in [*rows, total]:
        say(f"| {row['operation']} | {row['rps']} | {row['p50_ms']:.0f} | {row['p99_ms']:.0f} "
            f"| {row['failures']} / {row['requests']} |")  # fmt: skip
    say("")
    say("CPU, % of one core: " + ", ".join(f"{n} {v}" for n, v in list(shares.items())[:8]))
    say(f"saturates first: {busiest} ({busiest_cpu}% of a core); audit clean: {audits}")


if __name__ == "__main__":
    main()
