"""``edgectl scale <service> --region R --instances N``: more or fewer local instances.

The supervisor of ``edgectl up`` listens on a Unix socket (``var/run/edgectl.sock``, mode
0600): one JSON line in, one JSON line out. Scaling up starts copies of the service's
first instance on the next free ports (same settings, their own port and instance id),
supervised like the others, and answers once they are ready; scaling down stops the
newest instances first (SIGTERM: each deregisters from etcd, drains, then exits). The
topology's instances count toward N. Only with ``EDGE_DISCOVERY=etcd``: a static
topology would not tell the gateway about the new instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgectl.processes import ProcessSpec

SOCKET_NAME = "edgectl.sock"
#: A request line is small; anything longer is refused (a bound on what is read).
MAX_REQUEST = 4096
MAX_INSTANCES = 16
#: How long a scale-up waits for its new instances to be ready.
READY_TIMEOUT = 60.0


class ScaleError(Exception):
    """A request the stack cannot carry out (the message says why)."""


def socket_path(var_dir: Path) -> Path:
    return var_dir / "run" / SOCKET_NAME


def free_port_from(host: str, start: int, taken: set[int]) -> int:
    """The first port from ``start`` up that no spec uses and that binds on ``host``."""
    for port in range(start, min(start + 1000, 65536)):
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host if host not in ("", "0.0.0.0") else "127.0.0.1", port))
            except OSError:
                continue
        return port
    raise ScaleError(f"no free port from {start}")


def copy_spec(template: ProcessSpec, port: int) -> ProcessSpec:
    """``template`` on another port, under that port's instance id."""
    prefix = template.prefix
    if not prefix:
        raise ScaleError(f"{template.service} cannot be scaled (no settings prefix)")
    region = f"-{template.region}" if template.region else ""
    name = f"{template.service}{region}-{port}"
    host = template.ready_url.split("://", 1)[1].rsplit(":", 1)[0]
    env = {
        **template.env,
        f"{prefix}PORT": str(port),
        f"{prefix}INSTANCE_ID": name,
        f"{prefix}DISCOVERY_WEIGHT": template.env.get(f"{prefix}DISCOVERY_WEIGHT", "1"),
    }
    return replace(
        template,
        name=name,
        port=port,
        ready_url=f"http://{host}:{port}/readyz",
        env=env,
        public_url=None,
        admin_url=None,
    )


def parse_request(line: bytes) -> tuple[str, str | None, int]:
    """(service, region, instances) from one request line; ScaleError if malformed."""
    try:
        request = json.loads(line)
    except ValueError as exc:
        raise ScaleError("the request is not JSON") from exc
    if not isinstance(request, dict) or request.get("op") != "scale":
        raise ScaleError("unknown request")
    service, region, count = request.get("service"), request.get("region"), request.get("instances")
    if not isinstance(service, str) or not service:
        raise ScaleError("service missing")
    if region is not None and not isinstance(region, str):
        raise ScaleError("region must be a string")
    if not isinstance(count, int) or isinstance(count, bool):
        raise ScaleError("instances must be an integer")
    if not 1 <= count <= MAX_INSTANCES:
        raise ScaleError(f"instances must be 1 to {MAX_INSTANCES}")
    return service, region or None, count


async def serve_control(
    path: Path, handler: Callable[[str, str | None, int], Awaitable[dict[str, Any]]]
) -> asyncio.AbstractServer:
    """The supervisor's control socket: each connection is one request and one answer."""
    lock = asyncio.Lock()  # one scale at a time

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            if len(line) > MAX_REQUEST:
                raise ScaleError("request too long")
            service, region, count = parse_request(line)
            async with lock:
                answer = await handler(service, region, count)
            answer = {"ok": True, **answer}
        except ScaleError as exc:
            answer = {"ok": False, "error": str(exc)}
        except (TimeoutError, ValueError, asyncio.LimitOverrunError):
            answer = {"ok": False, "error": "bad request"}
        with contextlib.suppress(ConnectionError):
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        writer.close()

    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(on_connect, path=str(path), limit=MAX_REQUEST)
    path.chmod(0o600)
    return server


def request_scale(
    var_dir: Path, service: str, region: str | None, instances: int, timeout: float = 120.0
) -> dict[str, Any]:
    """Ask the running stack's supervisor (blocking); ScaleError when there is none."""
    path = socket_path(var_dir)
    request = {"op": "scale", "service": service, "region": region, "instances": instances}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        try:
            conn.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ScaleError(f"no running stack (no {path})") from exc
        conn.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    try:
        answer: dict[str, Any] = json.loads(data)
    except ValueError as exc:
        raise ScaleError("the supervisor gave no answer") from exc
    return answer
