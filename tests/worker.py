"""What this pytest process may use without meeting another one running beside it.

Tests run in several processes at once: the pytest-xdist workers of one session, and
other sessions on the same machine (each picks its own ``EDGE_E2E_PORT_SHIFT``). Each
process owns one block of 10,000 ports, starting at its port shift:

* worker ``gwN`` of a session shifts by ``EDGE_E2E_PORT_SHIFT + 10000 * N`` (a run
  without xdist is worker 0);
* the e2e stack is the checked-in topology (ports 7001-7361) moved by that shift, and
  other fixed-layout e2e processes keep to ``shift + 7000-7999`` too;
* :func:`free_port` hands out the rest of the block, each port once per process;
* the Redis database counts down from the one in ``EDGE_TEST_REDIS_URL``, one per block
  above the default shift of 10000 (so a plain run keeps database 15).

Sessions run side by side need shifts at least ``10000 * workers`` apart (10000 and
30000 with two workers each). Blocks above 32767 lie in Linux's ephemeral port range
(``/proc/sys/net/ipv4/ip_local_port_range``, 32768-60999 here), where the kernel also
picks the local ports of client connections and of servers bound to port 0: a stack
port can then be taken when an instance (re)starts ("address already in use"). The
default shift keeps two workers' blocks (10000-29999) clear of it.
"""

from __future__ import annotations

import os
import re
import socket

BLOCK = 10_000
#: The part of a block the e2e topology's ports land in.
STACK_PORTS = range(7000, 8000)
DEFAULT_SHIFT = 10_000
REDIS_DATABASES = 16


def _worker_index() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name.removeprefix("gw")) if name.startswith("gw") else 0


def _port_shift() -> int:
    base = int(os.environ.get("EDGE_E2E_PORT_SHIFT", str(DEFAULT_SHIFT)))
    shift = base + BLOCK * _worker_index()
    if shift < 0 or shift + BLOCK > 65_536:
        raise RuntimeError(
            f"worker {_worker_index()} of a session at EDGE_E2E_PORT_SHIFT={base} would use "
            f"ports {shift}-{shift + BLOCK - 1}: use a lower shift or fewer workers (-n)"
        )
    return shift


#: Added to every port of the checked-in topology for this process's e2e processes.
PORT_SHIFT = _port_shift()

_next = PORT_SHIFT + 1000


def free_port() -> int:
    """A loopback port of this process's block, free now and never handed out before."""
    global _next
    while _next < PORT_SHIFT + BLOCK:
        port, _next = _next, _next + 1
        if port - PORT_SHIFT in STACK_PORTS:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port left in {PORT_SHIFT + 1000}-{PORT_SHIFT + BLOCK - 1}")


def redis_url(base: str) -> str:
    """``base`` (``redis://host:port/N``) on this process's own database."""
    match = re.fullmatch(r"(redis://[^/]+)(?:/(\d+))?", base)
    if match is None:
        return base  # something unusual (a socket path, options): used as given
    database = int(match.group(2) or 0) - (PORT_SHIFT - DEFAULT_SHIFT) // BLOCK
    return f"{match.group(1)}/{database % REDIS_DATABASES}"
