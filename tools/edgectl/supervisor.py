"""Start every process, wait until each is ready, restart crashes with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from edgectl.discovery import discovery_mode
from edgectl.processes import ProcessSpec, child_env, write_pid
from edgectl.scale import READY_TIMEOUT, ScaleError, copy_spec, free_port_from, serve_control
from edgectl.scale import socket_path as control_socket

logger = logging.getLogger("edgectl")

BACKOFF_START = 0.2
BACKOFF_MAX = 10.0
STABLE_AFTER = 30.0
#: How long a stopping child gets before SIGKILL: a service deregisters, waits its drain
#: delay (EDGE_DISCOVERY_DRAIN_DELAY, 1 s), then uvicorn gives the requests in flight up
#: to 10 s (edgelib.runner) before the lifespan shuts down; all of that must fit.
STOP_GRACE = 15.0


class Supervised:
    """One child process and its restart loop."""

    def __init__(self, spec: ProcessSpec, log_dir: Path, run_dir: Path) -> None:
        self.spec = spec
        self.log_path = log_dir / f"{spec.name}.log"
        self.pid_path = run_dir / f"{spec.name}.pid"
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.stopping = False

    async def _spawn(self) -> asyncio.subprocess.Process:
        log = self.log_path.open("ab")
        try:
            return await asyncio.create_subprocess_exec(
                *self.spec.argv,
                env=child_env(self.spec),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the supervisor only
            )
        finally:
            log.close()

    async def run(self) -> None:
        backoff = BACKOFF_START
        while not self.stopping:
            started = time.monotonic()
            self.process = await self._spawn()
            write_pid(self.pid_path, self.process.pid)
            code = await self.process.wait()
            if self.stopping:
                return
            if time.monotonic() - started > STABLE_AFTER:
                backoff = BACKOFF_START
            self.restarts += 1
            logger.warning(
                "%s exited with %s; restarting in %.1fs (restart %d)",
                self.spec.name,
                code,
                backoff,
                self.restarts,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def stop(self) -> None:
        self.stopping = True
        proc = self.process
        self.pid_path.unlink(missing_ok=True)
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


#: Told each name as it becomes ready (``make up``'s live count).
Progress = Callable[[str], None]


async def wait_ready(
    specs: list[ProcessSpec], timeout: float, progress: Progress | None = None
) -> list[str]:
    """Poll every ``ready_url`` until all answer 200; return the names still not ready."""
    pending = {s.name: s for s in specs}
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as client:
        while pending and time.monotonic() < deadline:
            for name, spec in list(pending.items()):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(spec.ready_url)).status_code == 200:
                        del pending[name]
                        if progress is not None:
                            progress(name)
            if pending:
                await asyncio.sleep(0.25)
    return sorted(pending)


class ReadyCount:
    """Prints ``ready  sv-user-east-7201  (5/13, 3.2 s)`` as each process comes up."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.ready = 0
        self.started = time.monotonic()

    def __call__(self, name: str) -> None:
        self.ready += 1
        elapsed = time.monotonic() - self.started
        print(f"ready  {name}  ({self.ready}/{self.total}, {elapsed:.1f} s)", flush=True)  # noqa: T201


def print_table(specs: list[ProcessSpec], public_url: str, admin_url: str) -> None:
    rows = [("SERVICE", "REGION", "INSTANCE", "URL")]
    rows += [(s.service, s.region or "global", s.name, s.url) for s in specs]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(col.ljust(w) for col, w in zip(row, widths, strict=True)))  # noqa: T201
    print(f"\nGateway (public): {public_url}")  # noqa: T201
    print(f"Gateway (admin):  {admin_url}   e.g. curl {admin_url}/cluster")  # noqa: T201
    print("Logs: var/log/<instance>.log   PIDs: var/run/<instance>.pid")  # noqa: T201
    print("Stop: Ctrl-C or `make down`")  # noqa: T201


class Stack:
    """The supervised children, and ``edgectl scale``'s changes to them."""

    def __init__(self, children: list[Supervised], log_dir: Path, run_dir: Path) -> None:
        self.children = children
        self.log_dir = log_dir
        self.run_dir = run_dir
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, child: Supervised) -> None:
        self.tasks.append(asyncio.create_task(child.run(), name=child.spec.name))

    async def scale(self, service: str, region: str | None, count: int) -> dict[str, object]:
        if discovery_mode() != "etcd":
            raise ScaleError(
                "scale needs EDGE_DISCOVERY=etcd (a static topology would not tell the "
                "gateway about new instances)"
            )
        if service == "gateway-api":
            raise ScaleError("the gateway is not scaled this way")
        current = [
            c for c in self.children if c.spec.service == service and c.spec.region == region
        ]
        if not current:
            where = f" in region {region}" if region else " (global)"
            raise ScaleError(f"no {service} instance{where} in this stack")
        added: list[str] = []
        removed: list[str] = []
        if count > len(current):
            taken = {c.spec.port for c in self.children}
            port = max(c.spec.port for c in current) + 1
            host = current[0].spec.ready_url.split("://", 1)[1].rsplit(":", 1)[0]
            new: list[Supervised] = []
            for _ in range(count - len(current)):
                port = free_port_from(host, port, taken)
                taken.add(port)
                child = Supervised(copy_spec(current[0].spec, port), self.log_dir, self.run_dir)
                # Before the gateway (the last child): it stays the one stopped first.
                self.children.insert(len(self.children) - 1, child)
                self.start(child)
                new.append(child)
                added.append(child.spec.name)
            not_ready = await wait_ready([c.spec for c in new], READY_TIMEOUT)
            if not_ready:
                raise ScaleError(f"started but not ready in {READY_TIMEOUT:.0f}s: {not_ready}")
        elif count < len(current):
            # The newest first (those scale added, then the topology's last ones).
            leaving = current[count:][::-1]
            await asyncio.gather(*(c.stop() for c in leaving))
            for child in leaving:
                self.children.remove(child)
                removed.append(child.spec.name)
        instances = [
            c.spec.name
            for c in self.children
            if c.spec.service == service and c.spec.region == region
        ]
        return {"added": added, "removed": removed, "instances": instances}


async def supervise(
    specs: list[ProcessSpec],
    *,
    var_dir: Path,
    ready_timeout: float,
    public_url: str,
    admin_url: str,
) -> int:
    log_dir = var_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    run_dir = var_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    pid_file = run_dir / "edgectl.pid"
    pid_file.write_text(str(os.getpid()))

    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_event.set)

    children = [Supervised(spec, log_dir, run_dir) for spec in specs]
    stack = Stack(children, log_dir, run_dir)
    # Services first, the gateway last: it probes the others as it starts.
    print(f"starting {len(specs)} processes (logs in {log_dir})", flush=True)  # noqa: T201
    for child in children[:-1]:
        stack.start(child)
    started = time.monotonic()
    count = ReadyCount(len(specs))
    not_ready = await wait_ready(specs[:-1], ready_timeout, count)
    stack.start(children[-1])
    if not not_ready:
        not_ready = await wait_ready(
            specs[-1:], max(5.0, ready_timeout - (time.monotonic() - started)), count
        )
    code = 0
    if not_ready:
        logger.error(
            "not ready after %.0fs: %s (see var/log/)", ready_timeout, ", ".join(not_ready)
        )
        code = 1
    else:
        print(f"\nAll {len(specs)} processes ready in {time.monotonic() - started:.1f}s\n")  # noqa: T201
        print_table(specs, public_url, admin_url)
        control = await serve_control(control_socket(var_dir), stack.scale)
        try:
            await stop_event.wait()
        finally:
            control.close()
            control_socket(var_dir).unlink(missing_ok=True)
    print("\nstopping...")  # noqa: T201
    # The gateway first, so no request is sent to a service that is going away.
    await children[-1].stop()
    await asyncio.gather(*(c.stop() for c in children[:-1]))
    for task in stack.tasks:
        task.cancel()
    await asyncio.gather(*stack.tasks, return_exceptions=True)
    with contextlib.suppress(FileNotFoundError):
        pid_file.unlink()
    print("stopped")  # noqa: T201
    return code
