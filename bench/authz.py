"""The gateway's authorization step at 10,000 policies: cost per request.

Builds a policy of 10,000 permission rules (2,000 roles with 5 permissions each, in the
domain ``default``) and 10,000 role assignments, installs it in the gateway's
:class:`Authorizer` exactly as a policy document from auth-rbac's ``/internal/policy``,
and times, in this process:

- ``await Gateway.authorize(identity, permission)``, the step the proxy runs, once the
  decision is cached (the steady state);
- the same on a decision not yet cached (Casbin's ``FastEnforcer`` keyed on domain and
  object, with the gateway's role manager);
- for scale, plain Casbin scanning every rule for each decision (``casbin.Enforcer``);
- installing the policy (what a change costs the gateway, off the event loop).

    python bench/authz.py [--policies 10000] [--json bench/results/authz.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import casbin
import orjson

from auth_rbac.policy.enforcer import model_text
from edgelib.identity import Identity
from edgelib.policy import DomainRoles
from gateway_api import native

native.activate()  # an entry point: the gateway's compiled modules, as in production

from gateway_api.config import AuthzSettings, Settings  # noqa: E402
from gateway_api.gateway import Gateway  # noqa: E402
from gateway_api.problems import PermissionDenied  # noqa: E402
from gateway_api.routing.table import Permission  # noqa: E402
from gateway_api.security.authz import Authorizer  # noqa: E402

ROOT = Path(__file__).parents[1]
PERMISSIONS_PER_ROLE = 5


def policy_document(policies: int, users: int) -> dict[str, Any]:
    """``policies`` p rules over policies/5 roles, and one role for each of ``users``."""
    roles = policies // PERMISSIONS_PER_ROLE
    rules: list[list[str]] = [
        [
            "p",
            f"role-{i // PERMISSIONS_PER_ROLE}",
            "default",
            f"obj-{i // PERMISSIONS_PER_ROLE}",
            f"act-{i % PERMISSIONS_PER_ROLE}",
        ]
        for i in range(policies)
    ]
    rules += [["g", f"user-{u}", f"role-{u % roles}", "default"] for u in range(users)]
    return {"version": 1, "changed": True, "model": model_text(), "rules": rules}


def requests(
    count: int, users: int, roles: int, rng: random.Random
) -> list[tuple[Identity, Permission]]:
    """Half allowed (the user's own role's object), half denied (another role's)."""
    out = []
    for _ in range(count):
        u = rng.randrange(users)
        own = u % roles
        obj = own if rng.random() < 0.5 else (own + 1 + rng.randrange(roles - 1)) % roles
        identity = Identity(f"user-{u}", f"user-{u}", "east", "s", "web")
        out.append(
            (identity, Permission(f"obj-{obj}", f"act-{rng.randrange(PERMISSIONS_PER_ROLE)}"))
        )
    return out


async def timed_async(
    step: Callable[[Identity, Permission], Any], calls: list[tuple[Identity, Permission]]
) -> tuple[float, int]:
    """Seconds for all calls and how many were allowed."""
    allowed = 0
    started = time.perf_counter()
    for identity, permission in calls:
        try:
            await step(identity, permission)
            allowed += 1
        except PermissionDenied:
            pass
    return time.perf_counter() - started, allowed


def best_of(runs: list[float]) -> dict[str, float]:
    return {"best": min(runs), "median": statistics.median(runs), "worst": max(runs)}


async def bench(policies: int, users: int, rounds: int) -> dict[str, Any]:
    rng = random.Random(5)
    roles = policies // PERMISSIONS_PER_ROLE
    document = policy_document(policies, users)
    authorizer = Authorizer(None, settings=AuthzSettings(decision_cache_size=1_000_000))
    install_ms = []
    for version in range(1, 4):
        document["version"] = version
        started = time.perf_counter()
        await authorizer.install(document)
        install_ms.append((time.perf_counter() - started) * 1000)

    gateway = Gateway(Settings(topology=ROOT / "deploy/local/topology.toml"))
    gateway.security.authz = authorizer
    step = gateway.authorize

    # Steady state: a working set of 2,000 (user, permission) pairs, every one decided once,
    # then 100,000 calls over it, timed apart for allowed and denied (a denial raises).
    working_set = requests(2_000, users, roles, rng)
    await timed_async(step, working_set)
    decided = [(c, authorizer.allowed(c[0].user_id, c[1].obj, c[1].act)) for c in working_set]
    allowed_set = [c for c, ok in decided if ok]
    denied_set = [c for c, ok in decided if not ok]
    hits = working_set * 50
    hit_runs: dict[str, list[float]] = {"mixed": [], "allowed": [], "denied": []}
    for _ in range(rounds):
        for name, calls in (
            ("mixed", hits),
            ("allowed", allowed_set * 50),
            ("denied", denied_set * 50),
        ):
            seconds, allowed_count = await timed_async(step, calls)
            hit_runs[name].append(seconds / len(calls) * 1e6)
            if name == "mixed":
                allowed_hits = allowed_count

    # First decisions: a fresh cache before each round.
    misses = requests(2_000, users, roles, rng)
    miss_runs = []
    for _ in range(rounds):
        snapshot = authorizer._snapshot
        assert snapshot is not None
        snapshot.decisions.clear()
        seconds, allowed_misses = await timed_async(step, misses)
        miss_runs.append(seconds / len(misses) * 1e6)

    # Plain Casbin for scale: every rule scanned per decision (our role manager, since
    # pycasbin's own takes minutes to build its graph for 10,000 assignments).
    plain = casbin.Enforcer(casbin.Enforcer.new_model(text=model_text()))
    plain.set_role_manager(DomainRoles())
    for rule in document["rules"]:
        plain.model[rule[0]][rule[0]].policy.append(rule[1:])
    plain.build_role_links()
    sample = misses[:20]
    started = time.perf_counter()
    plain_allowed = sum(bool(plain.enforce(i.user_id, "default", p.obj, p.act)) for i, p in sample)
    plain_us = (time.perf_counter() - started) / len(sample) * 1e6
    fast_allowed = sum(authorizer.allowed(i.user_id, p.obj, p.act) for i, p in sample)
    assert plain_allowed == fast_allowed, "plain Casbin and the gateway disagree"

    return {
        "policies": policies,
        "assignments": users,
        "roles": roles,
        "cached_decision_us": best_of(hit_runs["mixed"]),
        "cached_allowed_us": best_of(hit_runs["allowed"]),
        "cached_denied_us": best_of(hit_runs["denied"]),
        "first_decision_us": best_of(miss_runs),
        "plain_casbin_scan_us": plain_us,
        "install_policy_ms": best_of(install_ms),
        "allowed_share": {
            "cached": allowed_hits / len(hits),
            "first": allowed_misses / len(misses),
        },
        "calls": {"cached": len(hits), "first": len(misses), "plain": len(sample)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=10_000)
    parser.add_argument("--assignments", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = asyncio.run(bench(args.policies, args.assignments, args.rounds))
    result["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "casbin": metadata.version("casbin"),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    c, f = result["cached_decision_us"], result["first_decision_us"]
    lines = [
        f"gateway authorization step, {result['policies']:,} policies, "
        f"{result['assignments']:,} assignments ({result['roles']:,} roles)",
        f"  cached decision (steady state): {c['best']:.2f} us best, "
        f"{c['median']:.2f} us median  [{result['calls']['cached']:,} calls x rounds]",
        f"    of which allowed {result['cached_allowed_us']['median']:.2f} us, "
        f"denied (403 raised) {result['cached_denied_us']['median']:.2f} us (medians)",
        f"  first decision (Casbin, keyed): {f['best']:.1f} us best, {f['median']:.1f} us median",
        f"  plain Casbin, all rules scanned: {result['plain_casbin_scan_us'] / 1000:.2f} ms",
        f"  install a new policy version:    {result['install_policy_ms']['median']:.0f} ms median",
        f"  load average during the run:     {result['machine']['load_average'][0]:.1f}"
        f" on {result['machine']['cpus']} cpus",
    ]
    print("\n".join(lines))  # noqa: T201
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
