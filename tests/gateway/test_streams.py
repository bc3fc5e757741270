"""TCP stream routes (transport/streams.py): balancing, CIDR lists, limits, health, PROXY v2.

Upstreams are real TCP echo servers on loopback; the last test runs the gateway as a
process (``python -m gateway_api`` with ``GATEWAY_STREAMS``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from gateway_api.transport.streams import (
    PROXY_V2_SIGNATURE,
    Resolver,
    StreamConfigError,
    StreamProxy,
    StreamRoute,
    load_streams,
    proxy_v2_header,
)
from tests.gateway.conftest import worker_gateway
from tests.worker import free_port


class Echo:
    """A TCP server answering each read with ``<name>:<bytes>``; counts its connections."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.connections = 0
        self.first_bytes: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        first = True
        try:
            while data := await reader.read(65536):
                if first:
                    self.first_bytes.append(data)
                    first = False
                writer.write(self.name.encode() + b":" + data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


def route(*echoes: Echo, **options: object) -> StreamRoute:
    base = StreamRoute(
        name="echo",
        listen=free_port(),
        upstreams=tuple(("127.0.0.1", e.port) for e in echoes),
        health_interval=0.2,
    )
    return replace(base, **options)  # type: ignore[arg-type]


@asynccontextmanager
async def proxying(r: StreamRoute, resolve: Resolver | None = None) -> AsyncIterator[StreamProxy]:
    proxy = StreamProxy(r, resolve)
    await proxy.start("127.0.0.1")
    try:
        yield proxy
    finally:
        await proxy.stop()


async def talk(port: int, payload: bytes = b"hi") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def refused(port: int) -> bool:
    """True when the gateway closes the connection without passing a byte."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"hello")
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        writer.close()


async def settled(proxy: StreamProxy, active: int = 0) -> None:
    """Until the gateway's side of closed connections is done too (or 5 s)."""
    deadline = time.monotonic() + 5
    while proxy.active > active and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


@pytest.fixture
async def echoes() -> AsyncIterator[tuple[Echo, Echo]]:
    a, b = Echo("a"), Echo("b")
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


async def test_connections_are_balanced_over_two_upstreams_and_bytes_pass_both_ways(
    echoes: tuple[Echo, Echo],
) -> None:
    async with proxying(route(*echoes)) as proxy:
        answers = [await talk(proxy.route.listen, b"x") for _ in range(10)]
        assert Counter(answers) == {b"a:x": 5, b"b:x": 5}
        big = bytes(range(256)) * 4096  # 1 MiB, echoed in pieces, in order
        got = await talk(proxy.route.listen, big)
        assert got.replace(b"a:", b"").replace(b"b:", b"") == big
        assert proxy.counts.accepted == 11
        await settled(proxy)
        assert proxy.active == 0


async def test_least_connections_sends_new_connections_to_the_idle_upstream(
    echoes: tuple[Echo, Echo],
) -> None:
    async with proxying(route(*echoes, balancing="least_connections")) as proxy:
        # One connection held open on whichever comes first; the next three go elsewhere.
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.route.listen)
        writer.write(b"hold")
        held = (await reader.read(100)).split(b":")[0]
        others = {(await talk(proxy.route.listen)).split(b":")[0] for _ in range(3)}
        assert others == {b"b" if held == b"a" else b"a"}
        writer.close()


async def test_a_denied_network_is_closed_before_any_byte_and_an_allow_list_admits_only_it(
    echoes: tuple[Echo, Echo],
) -> None:
    loopback = (ipaddress.ip_network("127.0.0.0/8"),)
    elsewhere = (ipaddress.ip_network("10.0.0.0/8"),)
    async with proxying(route(*echoes, deny=loopback)) as denied:
        assert await refused(denied.route.listen)
        assert denied.counts.denied == 1
    async with proxying(route(*echoes, allow=elsewhere)) as not_listed:
        assert await refused(not_listed.route.listen)
    async with proxying(route(*echoes, allow=loopback)) as listed:
        assert await talk(listed.route.listen) in {b"a:hi", b"b:hi"}
    # Refused ones never reached an upstream (the health probes connect, but send nothing).
    assert len(echoes[0].first_bytes) + len(echoes[1].first_bytes) == 1


async def test_the_connection_limit_holds_and_a_closed_connection_frees_its_place(
    echoes: tuple[Echo, Echo],
) -> None:
    async with proxying(route(*echoes, max_connections=2)) as proxy:
        held = []
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.route.listen)
            writer.write(b"x")
            assert await reader.read(100)  # proxied: it counts
            held.append(writer)
        assert await refused(proxy.route.listen)
        assert proxy.counts.over_limit == 1
        held.pop().close()
        await settled(proxy, 1)
        assert await talk(proxy.route.listen) in {b"a:hi", b"b:hi"}
        held.pop().close()


async def test_an_idle_link_is_closed_after_the_idle_timeout(echoes: tuple[Echo, Echo]) -> None:
    async with proxying(route(*echoes, idle_timeout=0.3)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.route.listen)
        writer.write(b"x")
        await reader.read(100)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the gateway
        assert 0.2 < time.monotonic() - started < 2
        assert proxy.counts.idle_closed == 1
        writer.close()


async def test_a_dead_upstream_is_skipped_without_failing_a_client_then_taken_back(
    echoes: tuple[Echo, Echo],
) -> None:
    a, b = echoes
    async with proxying(route(a, b)) as proxy:
        await a.stop()
        # Before any probe noticed: the refused connect is retried on b, no client fails.
        answers = [await talk(proxy.route.listen) for _ in range(6)]
        assert answers == [b"b:hi"] * 6
        assert [t.healthy for t in proxy.targets] == [False, True]
        await a.start()
        deadline = time.monotonic() + 5
        while not proxy.targets[0].healthy and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert {await talk(proxy.route.listen) for _ in range(4)} == {b"a:hi", b"b:hi"}
        await b.stop()
        await a.stop()
        assert await refused(proxy.route.listen)  # none left: closed, counted
        assert proxy.counts.no_upstream == 1


async def test_proxy_protocol_v2_tells_the_upstream_who_the_client_is(
    echoes: tuple[Echo, Echo],
) -> None:
    a, _ = echoes
    async with proxying(route(a, proxy_protocol=True)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.route.listen)
        client_port = writer.get_extra_info("sockname")[1]
        writer.write(b"payload")
        writer.write_eof()
        await reader.read()
        writer.close()
    header = b"".join(a.first_bytes)
    assert header.startswith(PROXY_V2_SIGNATURE)
    version_command, family = header[12], header[13]
    (length,) = struct.unpack("!H", header[14:16])
    assert (version_command, family, length) == (0x21, 0x11, 12)
    src, dst = header[16:20], header[20:24]
    src_port, dst_port = struct.unpack("!HH", header[24:28])
    assert (ipaddress.ip_address(src), src_port) == (ipaddress.ip_address("127.0.0.1"), client_port)
    assert (ipaddress.ip_address(dst), dst_port) == (
        ipaddress.ip_address("127.0.0.1"),
        proxy.route.listen,
    )
    assert header[28:].startswith(b"payload")
    assert proxy_v2_header(("::1", 5), ("::1", 6))[13] == 0x21


async def test_a_client_that_never_reads_stalls_the_upstream_instead_of_filling_memory() -> None:
    sent = 0

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        chunk = b"z" * 65536
        try:
            while sent < 200 * 1024 * 1024:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        except OSError:
            pass

    port = free_port()
    server = await asyncio.start_server(flood, "127.0.0.1", port)
    try:
        async with proxying(
            StreamRoute(name="flood", listen=free_port(), upstreams=(("127.0.0.1", port),))
        ) as proxy:
            _, writer = await asyncio.open_connection("127.0.0.1", proxy.route.listen)
            await asyncio.sleep(1.0)  # the client reads nothing
            # Socket buffers on both hops and one chunk in the gateway: a few MB, not 200.
            assert proxy.counts.bytes_out < 16 * 1024 * 1024
            assert sent < 32 * 1024 * 1024
            writer.close()
    finally:
        server.close()


async def test_a_service_route_follows_its_pool_as_instances_join_and_leave(
    echoes: tuple[Echo, Echo],
) -> None:
    a, b = echoes
    pool = [("127.0.0.1", a.port)]
    calls: list[tuple[str, str | None]] = []

    def resolve(service: str, region: str | None) -> list[tuple[str, int]]:
        calls.append((service, region))
        return list(pool)

    r = replace(route(a), upstreams=(), service="echo-tcp", region="east")
    async with proxying(r, resolve) as proxy:
        assert calls[0] == ("echo-tcp", "east")
        assert {await talk(proxy.route.listen) for _ in range(3)} == {b"a:hi"}
        pool.append(("127.0.0.1", b.port))  # joins: traffic once a probe passed
        deadline = time.monotonic() + 5
        while not (len(proxy.targets) == 2 and all(t.healthy for t in proxy.targets)):
            assert time.monotonic() < deadline, proxy.snapshot()
            await asyncio.sleep(0.05)
        assert {await talk(proxy.route.listen) for _ in range(4)} == {b"a:hi", b"b:hi"}
        pool.remove(("127.0.0.1", a.port))  # leaves: no new connection
        while len(proxy.targets) != 1:
            assert time.monotonic() < deadline + 5, proxy.snapshot()
            await asyncio.sleep(0.05)
        assert {await talk(proxy.route.listen) for _ in range(3)} == {b"b:hi"}


async def test_the_gateway_resolves_a_service_route_from_its_pools(tmp_path: Path) -> None:
    from gateway_api.config import Settings
    from gateway_api.gateway import Gateway
    from gateway_api.serving import _pool_addresses

    topology = tmp_path / "topology.toml"
    topology.write_text(
        '[gateway]\nhost = "127.0.0.1"\n[[regions]]\nname = "east"\n[[regions]]\nname = "west"\n'
        '[[services]]\nname = "tcp-echo"\nregion = "east"\n'
        "instances = [{ port = 9101 }, { port = 9102 }]\n"
        '[[services]]\nname = "tcp-echo"\nregion = "west"\ninstances = [{ port = 9201 }]\n'
    )
    routes = tmp_path / "routes.toml"
    routes.write_text('[[routes]]\nprefix = "/api/v1/x"\nservice = "tcp-echo"\naccess = "public"\n')
    settings = Settings(topology=topology, routes=routes, var_dir=tmp_path)
    resolve = _pool_addresses(Gateway(settings))
    assert resolve("tcp-echo", "east") == [("127.0.0.1", 9101), ("127.0.0.1", 9102)]
    assert resolve("tcp-echo", "west") == [("127.0.0.1", 9201)]
    assert resolve("nothing", "east") == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[[streams]]\nname = 'x'\nlisten = 7000\n", "either upstreams"),
        ("[[streams]]\nname='x'\nlisten=7000\nupstreams=['a:1']\nservice='s'\n", "not both"),
        ("[[streams]]\nname='x'\nlisten=7000\nupstreams=['a:1']\nregion='east'\n", "region"),
        ("[[streams]]\nname = 'x'\nlisten = 7000\nupstreams = ['nohost']\n", "host:port"),
        ("[[streams]]\nname = 'x'\nlisten = 0\nupstreams = ['a:1']\n", "listen"),
        ("[[streams]]\nname='x'\nlisten=7000\nupstreams=['a:1']\ndeny=['10.0.0.0/33']\n", "deny"),
        ("[[streams]]\nname='x'\nlisten=7000\nupstreams=['a:1']\ncolour='red'\n", "colour"),
        ("[[streams]]\nname='x'\nlisten=7000\nupstreams=['a:1']\n" * 2, "same name"),
        ("streams = 3", "streams"),
        ("[[streams]\n", "not TOML"),
    ],
)
def test_a_bad_streams_file_is_refused_saying_what_is_wrong(
    tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / "streams.toml"
    path.write_text(text)
    with pytest.raises(StreamConfigError, match=says):
        load_streams(path)


@contextmanager
def echo_servers_in_a_thread(*names: str) -> Iterator[list[Echo]]:
    loop = asyncio.new_event_loop()
    servers = [Echo(n) for n in names]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    for s in servers:
        asyncio.run_coroutine_threadsafe(s.start(), loop).result(5)
    try:
        yield servers
    finally:
        for s in servers:
            asyncio.run_coroutine_threadsafe(s.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.mark.e2e
@pytest.mark.timeout(600)  # a gateway process starts slowly on a loaded 2-core machine
def test_tcp_echo_through_the_gateway_process_balanced_filtered_and_limited(
    tmp_path: Path,
) -> None:
    routes = '[[routes]]\nprefix = "/api/v1/echo"\nservice = "echo"\naccess = "public"\n'
    open_port, denied_port = free_port(), free_port()
    with echo_servers_in_a_thread("one", "two") as (one, two):
        upstreams = f'["127.0.0.1:{one.port}", "127.0.0.1:{two.port}"]'
        (tmp_path / "streams.toml").write_text(
            f'[[streams]]\nname = "echo"\nlisten = {open_port}\nupstreams = {upstreams}\n'
            "max_connections = 3\n"
            f'[[streams]]\nname = "closed"\nlisten = {denied_port}\nupstreams = {upstreams}\n'
            'deny = ["127.0.0.0/8"]\n'
        )
        env = {"GATEWAY_STREAMS": str(tmp_path / "streams.toml")}
        with worker_gateway(tmp_path, routes, workers=1, env=env) as gw:

            async def run() -> None:
                answers = [await talk(open_port, b"ping") for _ in range(8)]
                assert Counter(answers) == {b"one:ping": 4, b"two:ping": 4}
                assert await refused(denied_port)
                held = []
                for _ in range(3):
                    reader, writer = await asyncio.open_connection("127.0.0.1", open_port)
                    writer.write(b"x")
                    assert await reader.read(100)
                    held.append(writer)
                assert await refused(open_port)  # the fourth: over the limit
                for writer in held:
                    writer.close()

            asyncio.run(run())
            cluster = httpx.get(f"http://127.0.0.1:{gw.admin}/cluster", timeout=5).json()
    streams = {s["name"]: s for s in cluster["streams"]}
    assert streams["echo"]["counts"]["accepted"] == 11
    assert streams["echo"]["counts"]["over_limit"] == 1
    assert streams["closed"]["counts"]["denied"] == 1
    assert [u["healthy"] for u in streams["echo"]["upstreams"]] == [True, True]
