"""``edgectl up | down | status | migrate | generate | new-service``: the command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edgectl.discovery import (
    DEFAULT_ETCD_URL,
    LocalEtcd,
    discovery_mode,
    etcd_url,
    gateway_lines,
    status_lines,
)
from edgectl.generate import GenerateError, generate, stale
from edgectl.keys import KeyStore
from edgectl.observe import ObserveError, observing, prometheus_spec
from edgectl.processes import process_specs
from edgectl.registry import RegistryError, default_registry, load_registry
from edgectl.scaffold import ScaffoldError, new_service
from edgectl.scale import ScaleError, request_scale
from edgectl.supervisor import supervise
from edgelib.topology import TopologyError, load_topology

DEFAULT_TOPOLOGY = Path("deploy/local/topology.toml")


def _up(args: argparse.Namespace) -> int:
    topology = load_topology(args.topology)
    var_dir = args.var_dir
    # Each process gets its own keyring, derived from a root only edgectl reads.
    KeyStore(var_dir / "keys").write()
    specs = process_specs(load_registry(args.registry), topology, args.topology, var_dir)
    if observing():
        try:
            # Before the gateway: the supervisor starts the last spec last, stops it first.
            specs.insert(len(specs) - 1, prometheus_spec(topology, var_dir))
        except ObserveError as exc:
            print(f"edgectl: {exc}", file=sys.stderr)  # noqa: T201
            return 1
    gw = topology.gateway
    etcd = None
    if discovery_mode() == "etcd":
        # Every instance registers itself there (doc/discovery.md); children inherit the URL.
        try:
            etcd = LocalEtcd.ensure(var_dir)
        except RuntimeError as exc:
            print(f"edgectl: {exc}", file=sys.stderr)  # noqa: T201
            return 1
        os.environ["EDGE_ETCD_URL"] = etcd.url
    try:
        return asyncio.run(
            supervise(
                specs,
                var_dir=var_dir,
                ready_timeout=args.ready_timeout,
                public_url=f"http://{gw.host}:{gw.port}",
                admin_url=f"http://127.0.0.1:{gw.admin_port}",
            )
        )
    finally:
        if etcd is not None:
            etcd.stop()  # last: the services have deregistered by now


def _down(args: argparse.Namespace) -> int:
    pid_file = args.var_dir / "run" / "edgectl.pid"
    try:
        pid = int(pid_file.read_text())
    except (FileNotFoundError, ValueError):
        print("edgectl: no running stack")  # noqa: T201
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        print("edgectl: stale pid file removed")  # noqa: T201
        return 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print("edgectl: stack stopped")  # noqa: T201
            return 0
        time.sleep(0.2)
    print("edgectl: stack did not stop in 30s", file=sys.stderr)  # noqa: T201
    return 1


def _status(args: argparse.Namespace) -> int:
    """What is registered in etcd (and whether the local stack runs)."""
    pid_file = args.var_dir / "run" / "edgectl.pid"
    stack = f"running (pid {pid_file.read_text().strip()})" if pid_file.exists() else "not running"
    print(f"stack: {stack}")  # noqa: T201
    code, lines = status_lines(args.etcd_url or etcd_url(), args.prefix)
    try:
        admin = f"http://127.0.0.1:{load_topology(args.topology).gateway.admin_port}"
    except TopologyError as exc:
        lines.append(f"gateway: {exc}")
    else:
        lines += gateway_lines(admin)
    for line in lines:
        print(line)  # noqa: T201
    return code


def _scale(args: argparse.Namespace) -> int:
    """Ask the running stack for N instances of a service in a region."""
    try:
        answer = request_scale(args.var_dir, args.service, args.region, args.instances)
    except (ScaleError, OSError) as exc:
        print(f"edgectl: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    if not answer.get("ok"):
        print(f"edgectl: {answer.get('error')}", file=sys.stderr)  # noqa: T201
        return 1
    for name in answer["added"]:
        print(f"started {name}")  # noqa: T201
    for name in answer["removed"]:
        print(f"stopped {name} (deregistered, drained)")  # noqa: T201
    print(f"{args.service} {args.region or '(global)'}: {', '.join(answer['instances'])}")  # noqa: T201
    return 0


def _migrate(args: argparse.Namespace) -> int:
    """Apply every database-owning service's migrations (profiles other than local)."""
    registry = load_registry(args.registry)
    topology = load_topology(args.topology)
    KeyStore(args.var_dir / "keys").write()
    specs = process_specs(registry, topology, args.topology, args.var_dir)
    done: set[tuple[str, str | None]] = set()
    for spec in specs:
        key = (spec.service, spec.region)
        if spec.service == "gateway-api" or key in done:
            continue
        done.add(key)
        env = {**os.environ, **spec.env}
        print(f"migrating {spec.service} {spec.region or ''}".rstrip())  # noqa: T201
        subprocess.run(
            [sys.executable, "-m", registry.service(spec.service).package, "migrate"],
            env=env,
            check=True,
        )
    return 0


def _generate(args: argparse.Namespace) -> int:
    """Write (or with --check, only list) the files the registry makes stale."""
    if args.check:
        paths = stale(args.root)
        for path in paths:
            print(f"stale: {path}")  # noqa: T201
        if paths:
            print("run `make generate` and commit the result")  # noqa: T201
        return 1 if paths else 0
    for path in generate(args.root):
        print(f"wrote {path}")  # noqa: T201
    return 0


def _new_service(args: argparse.Namespace) -> int:
    """Scaffold a service, add it to deploy/services.toml and regenerate."""
    try:
        changed = new_service(
            args.root, args.name, plane=args.plane, port=args.port, description=args.description
        )
    except ScaffoldError as exc:
        print(f"edgectl: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    for path in changed:
        print(f"wrote {path}")  # noqa: T201
    package = args.name.replace("-", "_")
    print(  # noqa: T201
        f"\n{args.name} is registered. Next: `make up` starts it; "
        f"`.venv/bin/pytest tests/{package}` runs its tests; see doc/guide/add-a-service.md."
    )
    return 0


def _keys(args: argparse.Namespace) -> int:
    """Rotate the service keys a step, or print them as Kubernetes Secrets."""
    store = KeyStore(args.var_dir / "keys")
    if args.step == "render":
        print(store.render_secrets(args.namespace))  # noqa: T201
        return 0
    if args.step == "write":
        store.write()
    elif args.step == "add":
        print(f"edgectl: verifiers now accept {store.add()}; restart, then promote")  # noqa: T201
    elif args.step == "promote":
        print(f"edgectl: signers now use {store.promote()}; restart, then retire")  # noqa: T201
    else:
        print(f"edgectl: retired {', '.join(store.retire()) or 'nothing'}; restart")  # noqa: T201
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="edgectl")
    parser.add_argument("--topology", type=Path, default=DEFAULT_TOPOLOGY)
    parser.add_argument(
        "--registry",
        type=Path,
        default=default_registry(),
        help="deploy/services.toml here, else the one of edgectl's own tree",
    )
    parser.add_argument("--var-dir", type=Path, default=Path(os.environ.get("EDGE_VAR_DIR", "var")))
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the whole stack and supervise it")
    up.add_argument("--ready-timeout", type=float, default=90.0)
    up.set_defaults(func=_up)
    sub.add_parser("down", help="stop a running stack").set_defaults(func=_down)
    status = sub.add_parser("status", help="show what is registered in etcd")
    status.add_argument("--etcd-url", help=f"default $EDGE_ETCD_URL or {DEFAULT_ETCD_URL}")
    status.add_argument(
        "--prefix", default=os.environ.get("EDGE_DISCOVERY_PREFIX", "/edge/services")
    )
    status.set_defaults(func=_status)
    scale = sub.add_parser(
        "scale", help="start or stop local instances of a service (EDGE_DISCOVERY=etcd)"
    )
    scale.add_argument("service", help="e.g. sv-user")
    scale.add_argument("--region", help="the region (none for a global service)")
    scale.add_argument("--instances", type=int, required=True, help="how many, 1 to 16")
    scale.set_defaults(func=_scale)
    sub.add_parser("migrate", help="apply all migrations").set_defaults(func=_migrate)
    gen = sub.add_parser("generate", help="write every list derived from deploy/services.toml")
    gen.add_argument("--check", action="store_true", help="only list stale files; 1 if any")
    gen.add_argument("--root", type=Path, default=Path("."), help="the repository")
    gen.set_defaults(func=_generate)
    new = sub.add_parser("new-service", help="scaffold a service and register it")
    new.add_argument("name", help="e.g. sv-foo")
    new.add_argument("--plane", choices=["regional", "global"], default="regional")
    new.add_argument("--port", type=int, help="default port (next free one if not given)")
    new.add_argument("--description", default="a new Edge service")
    new.add_argument("--root", type=Path, default=Path("."), help="the repository")
    new.set_defaults(func=_new_service)
    keys = sub.add_parser("keys", help="write, rotate or render the service keyrings")
    keys.add_argument("step", choices=["write", "add", "promote", "retire", "render"])
    keys.add_argument("--namespace", default="edge")
    keys.set_defaults(func=_keys)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="edgectl: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        code = args.func(args)
    except (RegistryError, TopologyError, GenerateError) as exc:
        print(f"edgectl: {exc}", file=sys.stderr)  # noqa: T201
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
