"""TCP proxying: stream routes by listening port (nginx's ``stream`` module, APISIX's
stream routes, seed go_gateway's TCP proxy).

A stream route (``GATEWAY_STREAMS``: a TOML file of ``[[streams]]`` tables, read at
start) listens on a port of its own and forwards each connection, bytes both ways, to
one healthy upstream:

* **who may connect**: ``deny`` CIDR networks are refused first, then, when ``allow``
  lists any, only addresses in it; a refused connection is closed at once (no byte read);
* **bounds**: ``max_connections`` open at once per gateway process (beyond it a new
  connection is closed at once), ``idle_timeout`` seconds with no byte either way close
  both sides, ``connect_timeout`` for reaching an upstream; each direction copies at most
  64 KiB at a time and waits for the other side to take it (back-pressure: a client that
  does not read stops the upstream's reads, nothing piles up in memory);
* **balancing**: ``round_robin`` or ``least_connections`` over the healthy upstreams; an
  upstream that refuses the connection is marked down and the next one is tried (no byte
  has been sent yet, so the retry is safe);
* **health**: a TCP connect probe every ``health_interval`` seconds; ``unhealthy_threshold``
  failures in a row take an upstream out, ``healthy_threshold`` successes bring it back;
* **PROXY protocol v2** (``proxy_protocol = true``): the upstream's first bytes say who
  the client is (HAProxy's binary header), for upstreams that log or filter by address.

Half-closes pass through: a client that shuts its write side (EOF) lets the upstream
finish its answer. With ``GATEWAY_WORKERS`` > 1 each worker listens on the port
(``SO_REUSEPORT``) and the connection limit holds per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import struct
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgelib.tasks import cancel

logger = logging.getLogger("gateway.streams")

CHUNK = 64 * 1024
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: HAProxy's PROXY protocol v2 signature (doc/proxy-protocol.txt, section 2.2).
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


class StreamConfigError(ValueError):
    """The stream routes file cannot be used; the gateway does not start on it."""


class _Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    listen: Annotated[int, Field(ge=1, le=65535)]
    upstreams: Annotated[list[str], Field(max_length=64)] = []
    #: Or the instances of a service's pool (topology or discovery), in ``region``.
    service: Annotated[str | None, Field(min_length=1, max_length=64)] = None
    region: Annotated[str | None, Field(min_length=1, max_length=64)] = None
    balancing: Literal["round_robin", "least_connections"] = "round_robin"
    allow: list[str] = []
    deny: list[str] = []
    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 1024
    idle_timeout: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = 2.0
    proxy_protocol: bool = False
    health_interval: Annotated[float, Field(gt=0, le=300)] = 1.0
    healthy_threshold: Annotated[int, Field(ge=1, le=100)] = 1
    unhealthy_threshold: Annotated[int, Field(ge=1, le=100)] = 2

    @field_validator("upstreams")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_address(item)
        return value

    @field_validator("allow", "deny")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item.strip(), strict=False)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> _Route:
        if bool(self.upstreams) == bool(self.service):
            raise ValueError("give either upstreams (host:port list) or a service, not both")
        if self.region and not self.service:
            raise ValueError("region goes with service")
        return self


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    streams: list[_Route] = []


def parse_address(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as a pair; ValueError when it is not one."""
    host, sep, port = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port")
    return host, int(port)


@dataclass(frozen=True)
class StreamRoute:
    name: str
    listen: int
    upstreams: tuple[tuple[str, int], ...]
    balancing: str = "round_robin"
    allow: tuple[IpNetwork, ...] = ()
    deny: tuple[IpNetwork, ...] = ()
    max_connections: int = 1024
    idle_timeout: float = 300.0
    connect_timeout: float = 2.0
    proxy_protocol: bool = False
    health_interval: float = 1.0
    healthy_threshold: int = 1
    unhealthy_threshold: int = 2
    service: str | None = None
    region: str | None = None


#: The addresses of a service's pool in a region (the gateway's pools: topology or discovery).
Resolver = Callable[[str, str | None], list[tuple[str, int]]]


def load_streams(path: Path) -> list[StreamRoute]:
    """The stream routes of ``path``; StreamConfigError saying what is wrong."""
    try:
        doc = tomllib.loads(path.read_text())
        parsed = _File.model_validate(doc)
    except OSError as exc:
        raise StreamConfigError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise StreamConfigError(f"{path} is not TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise StreamConfigError(f"{path}: {problems}") from None
    names = [r.name for r in parsed.streams]
    ports = [r.listen for r in parsed.streams]
    if len(set(names)) != len(names):
        raise StreamConfigError(f"{path}: two stream routes have the same name")
    if len(set(ports)) != len(ports):
        raise StreamConfigError(f"{path}: two stream routes listen on the same port")
    return [
        StreamRoute(
            name=r.name,
            listen=r.listen,
            upstreams=tuple(parse_address(u) for u in r.upstreams),
            balancing=r.balancing,
            allow=tuple(ipaddress.ip_network(n.strip(), strict=False) for n in r.allow),
            deny=tuple(ipaddress.ip_network(n.strip(), strict=False) for n in r.deny),
            max_connections=r.max_connections,
            idle_timeout=r.idle_timeout,
            connect_timeout=r.connect_timeout,
            proxy_protocol=r.proxy_protocol,
            health_interval=r.health_interval,
            healthy_threshold=r.healthy_threshold,
            unhealthy_threshold=r.unhealthy_threshold,
            service=r.service,
            region=r.region,
        )
        for r in parsed.streams
    ]


def proxy_v2_header(client: tuple[str, int], local: tuple[str, int]) -> bytes:
    """PROXY protocol v2, command PROXY over TCP, from ``client`` to ``local``."""
    src, dst = ipaddress.ip_address(client[0]), ipaddress.ip_address(local[0])
    if src.version != dst.version:  # an IPv4 client on a dual-stack socket
        src = ipaddress.IPv6Address(f"::ffff:{src}") if src.version == 4 else src
        dst = ipaddress.IPv6Address(f"::ffff:{dst}") if dst.version == 4 else dst
    family = 0x11 if src.version == 4 else 0x21  # TCP over IPv4 / IPv6
    body = src.packed + dst.packed + struct.pack("!HH", client[1], local[1])
    return PROXY_V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


@dataclass
class Target:
    """One upstream of a stream route, with its health and open connections."""

    host: str
    port: int
    healthy: bool = True
    active: int = 0
    failures: int = 0
    successes: int = 0
    last_error: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class StreamCounts:
    accepted: int = 0
    denied: int = 0
    over_limit: int = 0
    no_upstream: int = 0
    idle_closed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass
class _Link:
    """One proxied connection: the last time a byte moved either way."""

    last: float = field(default_factory=time.monotonic)


class StreamProxy:
    """One stream route's listener, balancer and health checks."""

    def __init__(self, route: StreamRoute, resolve: Resolver | None = None) -> None:
        self.route = route
        self.resolve = resolve
        self.targets = [Target(host, port) for host, port in route.upstreams]
        if route.service is not None:
            if resolve is None:
                raise ValueError(f"stream route {route.name} names a service: give a resolver")
            self.follow_pool(first=True)
        self.counts = StreamCounts()
        self.active = 0
        self._next = 0
        self._server: asyncio.Server | None = None
        self._health: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, *, reuse_port: bool = False) -> None:
        self._server = await asyncio.start_server(
            self._accept, host, self.route.listen, reuse_port=reuse_port, limit=CHUNK
        )
        self._health = asyncio.create_task(
            self._probe_loop(), name=f"stream-health-{self.route.name}"
        )
        logger.info(
            "stream route listening",
            extra={"stream": self.route.name, "port": self.route.listen,
                   "upstreams": [t.address for t in self.targets]},
        )  # fmt: skip

    async def stop(self) -> None:
        """Stop listening, cut every open connection, wait for their handlers to end."""
        if self._server is not None:
            self._server.close()
        await cancel(self._health)
        for writer in list(self._writers):
            writer.transport.abort()
        if self._handlers:
            # Not cancelled: asyncio's stream callback cannot take a cancelled handler.
            await asyncio.wait(list(self._handlers), timeout=2)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def allowed(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.route.deny):
            return False
        return not self.route.allow or any(ip in net for net in self.route.allow)

    def choose(self, tried: set[int]) -> Target | None:
        """The next healthy upstream not yet tried (``id`` of each) for this connection."""
        candidates = [
            (i, t) for i, t in enumerate(self.targets) if t.healthy and id(t) not in tried
        ]
        if not candidates:
            return None
        size = len(self.targets)
        if self.route.balancing == "least_connections":
            index, target = min(candidates, key=lambda c: (c[1].active, (c[0] - self._next) % size))
        else:
            index, target = min(candidates, key=lambda c: (c[0] - self._next) % size)
        self._next = index + 1
        return target

    def snapshot(self) -> dict[str, object]:
        return {
            "name": self.route.name,
            "listen": self.route.listen,
            "active": self.active,
            "max_connections": self.route.max_connections,
            "counts": vars(self.counts).copy(),
            "upstreams": [
                {"address": t.address, "healthy": t.healthy, "active": t.active,
                 "last_error": t.last_error}
                for t in self.targets
            ],
        }  # fmt: skip

    # -- connections -------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        if not self.allowed(str(peer[0])):
            self.counts.denied += 1
            writer.transport.abort()
            return
        if self.active >= self.route.max_connections:
            self.counts.over_limit += 1
            writer.transport.abort()
            return
        self.active += 1
        self.counts.accepted += 1
        try:
            upstream = await self._connect()
            if upstream is None:
                self.counts.no_upstream += 1
                writer.transport.abort()
                return
            target, up_reader, up_writer = upstream
            self._writers.add(up_writer)
            try:
                if self.route.proxy_protocol:
                    local = writer.get_extra_info("sockname") or ("0.0.0.0", 0)
                    up_writer.write(proxy_v2_header((str(peer[0]), int(peer[1])), local[:2]))
                await self._pipe(reader, writer, up_reader, up_writer)
            finally:
                target.active -= 1
                self._writers.discard(up_writer)
                up_writer.transport.abort()
        except OSError:
            pass  # a peer reset its side: both are closed below
        finally:
            self.active -= 1
            writer.transport.abort()

    async def _connect(
        self,
    ) -> tuple[Target, asyncio.StreamReader, asyncio.StreamWriter] | None:
        tried: set[int] = set()
        while (target := self.choose(tried)) is not None:
            tried.add(id(target))
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(target.host, target.port, limit=CHUNK),
                    self.route.connect_timeout,
                )
            except (OSError, TimeoutError) as exc:
                self._record(target, ok=False, error=type(exc).__name__)
                if target.healthy:  # not yet out: out now, it just refused a client
                    target.healthy = False
                    logger.warning(
                        "stream upstream down",
                        extra={"stream": self.route.name, "upstream": target.address,
                               "error": type(exc).__name__},
                    )  # fmt: skip
                continue
            target.active += 1
            return target, up_reader, up_writer
        return None

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        link = _Link()
        inbound = asyncio.create_task(self._copy(reader, up_writer, link, inbound=True))
        outbound = asyncio.create_task(self._copy(up_reader, writer, link, inbound=False))
        watchdog = asyncio.create_task(self._watch_idle(link))
        try:
            # Done when the upstream has said all (its EOF reached the client), when either
            # side breaks, or when the link went idle.
            pending = {inbound, outbound}
            while pending:
                done, pending = await asyncio.wait(
                    pending | {watchdog}, return_when=asyncio.FIRST_COMPLETED
                )
                if watchdog in done:
                    self.counts.idle_closed += 1
                    return
                pending.discard(watchdog)
                if outbound in done or any(t.exception() is not None for t in done):
                    return
        finally:
            await cancel(inbound, outbound, watchdog)

    async def _copy(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        link: _Link,
        *,
        inbound: bool,
    ) -> None:
        while True:
            data = await source.read(CHUNK)
            if not data:
                if sink.can_write_eof():
                    with contextlib.suppress(OSError):
                        sink.write_eof()
                return
            link.last = time.monotonic()
            if inbound:
                self.counts.bytes_in += len(data)
            else:
                self.counts.bytes_out += len(data)
            sink.write(data)
            await sink.drain()  # at most one chunk waits: the slow side slows the other

    async def _watch_idle(self, link: _Link) -> None:
        idle = self.route.idle_timeout
        while True:
            left = link.last + idle - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, idle))

    # -- health --------------------------------------------------------------------------

    def follow_pool(self, *, first: bool = False) -> None:
        """Take the service pool's addresses now: unchanged upstreams keep their state,
        new ones take connections once a probe passed (at start: at once, as the gateway's
        pools do), gone ones get no new connection (open ones go on)."""
        if self.resolve is None or self.route.service is None:
            return
        wanted = list(dict.fromkeys(self.resolve(self.route.service, self.route.region)))
        known = {(t.host, t.port): t for t in self.targets}
        self.targets = [known.get(address) or Target(*address, healthy=first) for address in wanted]

    async def _probe_loop(self) -> None:
        while True:
            self.follow_pool()
            await asyncio.gather(*(self._probe(t) for t in self.targets))
            await asyncio.sleep(self.route.health_interval)

    async def _probe(self, target: Target) -> None:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(target.host, target.port), self.route.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            self._record(target, ok=False, error=type(exc).__name__)
            return
        writer.transport.abort()
        self._record(target, ok=True, error=None)

    def _record(self, target: Target, *, ok: bool, error: str | None) -> None:
        if ok:
            target.failures = 0
            target.successes += 1
            if not target.healthy and target.successes >= self.route.healthy_threshold:
                target.healthy = True
                target.last_error = None
                logger.info(
                    "stream upstream up",
                    extra={"stream": self.route.name, "upstream": target.address},
                )
            return
        target.successes = 0
        target.failures += 1
        target.last_error = error
        if target.healthy and target.failures >= self.route.unhealthy_threshold:
            target.healthy = False
            logger.warning(
                "stream upstream down",
                extra={"stream": self.route.name, "upstream": target.address, "error": error},
            )
