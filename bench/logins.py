"""``make bench-logins``: a login storm against a whole stack, and what else stays fast.

Starts the local stack on PostgreSQL and Redis (bench/stack.py: one auth-jwt; sv-user
twice in east, once in west; argon2id at OWASP's 19 MiB and 2 iterations, the
default), registers ``--accounts`` users, then for ``--seconds``:

- ``--concurrency`` clients log in through the gateway as fast as they are answered;
- beside them, probes every 20 ms: ``GET /healthz`` of auth-jwt and of each sv-user
  directly (their event loops), and token refreshes through the gateway (auth-jwt,
  no password hashing) by other users, and by two more straight to auth-jwt (the same
  figure as through the gateway means the gateway adds nothing).

Reports logins/s, 503s (the hashing pool's bound), the probes' p50/p99 (target: p99
under 50 ms), and each process's CPU: where the hashing happens. Writes
bench/results/logins.json.

    python bench/logins.py [--seconds 20] [--concurrency 32] [--accounts 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stack import (
    PASSWORD,
    ROOT,
    Stack,
    cpu_seconds,
    cpu_shares,
    load_average,
    login,
    running_stack,
    say,
)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50_ms": percentile(values, 0.5),
        "p99_ms": percentile(values, 0.99),
        "max_ms": round(max(values), 2) if values else 0.0,
        "mean_ms": round(statistics.fmean(values), 2) if values else 0.0,
    }


def register(client: httpx.Client, stack: Stack, count: int, tag: str) -> list[dict[str, Any]]:
    users = []
    for n in range(count):
        region = ("east", "west")[n % 2]
        username = f"{tag}{n}"
        created = client.post(
            stack.public + "/api/v1/users",
            json={"username": username, "password": PASSWORD, "region": region},
        )
        if created.status_code != 201:
            raise SystemExit(f"registration failed: {created.text}")
        users.append({"username": username, "region": region})
    return users


async def storm(
    stack: Stack,
    stormers: list[dict[str, Any]],
    refreshers: list[dict[str, Any]],
    seconds: float,
    concurrency: int,
) -> dict[str, Any]:
    ok = busy = other = 0
    login_ms: list[float] = []
    probes: dict[str, list[float]] = {"refresh": [], "refresh (auth-jwt direct)": []}
    health = {"auth-jwt /healthz": stack.url(7102)}
    for port, name in ((7201, "sv-user-east-1"), (7202, "sv-user-east-2"), (7301, "sv-user-west")):
        health[f"{name} /healthz"] = stack.url(port)
    for name in health:
        probes[name] = []
    deadline = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def log_in(n: int) -> None:
            nonlocal ok, busy, other
            user = stormers[n % len(stormers)]
            body = {"username": user["username"], "password": PASSWORD, "client_type": "app"}
            while time.monotonic() < deadline:
                begun = time.perf_counter()
                async with session.post(stack.public + "/api/v1/auth/login", json=body) as r:
                    await r.read()
                    status = r.status
                if status == 200:
                    ok += 1
                    login_ms.append(1000 * (time.perf_counter() - begun))
                elif status == 503:
                    busy += 1
                    await asyncio.sleep(0.2)
                else:
                    other += 1

        async def probe(name: str, url: str) -> None:
            while time.monotonic() < deadline:
                begun = time.perf_counter()
                async with session.get(url + "/healthz") as r:
                    await r.read()
                    if r.status == 200:
                        probes[name].append(1000 * (time.perf_counter() - begun))
                await asyncio.sleep(0.02)

        async def refresh(user: dict[str, Any], base: str, name: str) -> None:
            while time.monotonic() < deadline:
                begun = time.perf_counter()
                body = {"refresh_token": user["refresh_token"]}
                async with session.post(base + "/api/v1/auth/refresh", json=body) as r:
                    doc = await r.json(content_type=None)
                    if r.status == 200:
                        probes[name].append(1000 * (time.perf_counter() - begun))
                        user["refresh_token"] = doc["refresh_token"]
                await asyncio.sleep(0.08)

        begun = time.monotonic()
        await asyncio.gather(
            *(log_in(n) for n in range(concurrency)),
            *(probe(name, url) for name, url in health.items()),
            *(refresh(user, stack.public, "refresh") for user in refreshers[:4]),
            *(
                refresh(user, stack.url(7102), "refresh (auth-jwt direct)")
                for user in refreshers[4:]
            ),
        )
        elapsed = time.monotonic() - begun
    return {
        "seconds": round(elapsed, 1),
        "logins": ok,
        "logins_per_s": round(ok / elapsed, 1),
        "refused_503": busy,
        "other_errors": other,
        "login_latency": summary(login_ms),
        "probes": {name: summary(values) for name, values in probes.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument(
        "--login-concurrency",
        type=int,
        default=None,
        help="AUTH_JWT_LOGIN_CONCURRENCY for the stack (default: auth-jwt's; 0: no lane)",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/logins.json")
    args = parser.parse_args()
    extra_env = {}
    if args.login_concurrency is not None:
        extra_env["AUTH_JWT_LOGIN_CONCURRENCY"] = str(args.login_concurrency)
    with running_stack(extra_env) as stack, httpx.Client(timeout=30) as client:
        tag = f"l{int(time.time()) % 100000}x"
        stormers = register(client, stack, args.accounts, tag)
        refreshers = []
        for user in register(client, stack, 6, tag + "r"):
            refreshers.append(user | login(client, stack, user["username"], PASSWORD))
        pids = stack.pids()
        say(f"storm: {args.concurrency} clients logging in for {args.seconds} s")
        before, started = cpu_seconds(pids), time.monotonic()
        result = asyncio.run(storm(stack, stormers, refreshers, args.seconds, args.concurrency))
        shares = cpu_shares(before, cpu_seconds(pids), time.monotonic() - started)
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": load_average(),
        "method": {
            "argon2id": "19 MiB, 2 iterations, parallelism 1 (sv-user's defaults)",
            "stack": "edgectl up on PostgreSQL and Redis: 1 auth-jwt, sv-user 2 east + 1 west",
            "concurrency": args.concurrency,
            "auth_jwt_login_concurrency": extra_env.get("AUTH_JWT_LOGIN_CONCURRENCY", "default"),
        },
        **result,
        "cpu_percent": shares,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    say(f"logins/s: {result['logins_per_s']} ({result['logins']} in {result['seconds']} s), "
        f"503: {result['refused_503']}, other errors: {result['other_errors']}")  # fmt: skip
    say(f"login latency: {result['login_latency']}")
    say("| probe during the storm | count | p50 ms | p99 ms | max ms |")
    say("|---|---:|---:|---:|---:|")
    for name, row in result["probes"].items():
        say(f"| {name} | {row['count']} | {row['p50_ms']} | {row['p99_ms']} | {row['max_ms']} |")
    say("CPU, % of one core: " + ", ".join(f"{n} {v}" for n, v in list(shares.items())[:8]))


if __name__ == "__main__":
    main()
