"""Webhooks connect only to the public address they checked: no DNS rebinding, no loopback.

DNS is replaced by a resolver the test scripts (no test touches the internet); the
receiver is a real TCP server on loopback that counts every connection it accepts.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpcore
import pytest

from sv_notice.config import Settings
from sv_notice.delivery.addresses import IPAddress, is_blocked
from sv_notice.delivery.channels import DeliveryFailed, DeliveryJob, NoticeView
from sv_notice.delivery.webhook import WebhookChannel, new_secret, webhook_pool
from tests.sv_notice.conftest import NoticeApi, new_user, open_notice, settings_for
from tests.worker import free_port

PUBLIC = "93.184.216.34"


@dataclass
class Listener:
    """A real HTTP receiver on 127.0.0.1: every accepted connection and the bytes it sent."""

    port: int
    connections: list[bytes] = field(default_factory=list)

    @property
    def requests(self) -> list[bytes]:
        return [data for data in self.connections if data]


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    found = Listener(free_port())

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(found.connections)
        found.connections.append(b"")
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        found.connections[index] = head
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", found.port)
    try:
        yield found
    finally:
        server.close()
        await server.wait_closed()


class ScriptedResolver:
    """Answers each lookup with the next scripted list (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = [[ipaddress.ip_address(a) for a in answer] for answer in answers]
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        index = min(len(self.lookups), len(self.answers)) - 1
        return list(self.answers[index])


class NoInternet(httpcore.AsyncNetworkBackend):
    """Records every connection; loopback ones are real, others are refused (or redirected)."""

    def __init__(self, redirect: dict[str, str] | None = None) -> None:
        self.real = httpcore.AnyIOBackend()
        self.redirect = redirect or {}
        self.connects: list[tuple[str, int]] = []
        self.tls_names: list[str | None] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        # Like a NAT in the path: the checked address leads somewhere else.
        host = self.redirect.get(host, host)
        if not ipaddress.ip_address(host).is_loopback:
            raise httpcore.ConnectError(f"test: no internet ({host})")
        stream = await self.real.connect_tcp(host, port, timeout, local_address, socket_options)
        return TlsRecorder(stream, self.tls_names)

    async def sleep(self, seconds: float) -> None:
        await self.real.sleep(seconds)


class TlsRecorder(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, names: list[str | None]) -> None:
        self.inner = inner
        self.names = names

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        self.names.append(server_hostname)
        await self.inner.aclose()
        raise httpcore.ConnectError("test: the receiver speaks no TLS")

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


def _job(url: str) -> DeliveryJob:
    notice = NoticeView("n-1", "u-1", "general", "t", "b", "en", {}, datetime.now(UTC))
    return DeliveryJob("d-1", "webhook", 1, notice, webhook_url=url, webhook_secret=new_secret())


async def _deliver(url: str, resolver: ScriptedResolver, **options: Any) -> DeliveryFailed | None:
    allow_private = options.pop("allow_private", False)
    pool = webhook_pool(timeout=2.0, allow_private=allow_private, resolver=resolver, **options)
    try:
        await WebhookChannel(pool, timeout=2.0).send(_job(url))
    except DeliveryFailed as exc:
        return exc
    finally:
        await pool.aclose()
    return None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "100.127.255.254", "0.0.0.0", "224.0.0.1", "239.255.255.250",
        "240.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.0.8", "192.0.2.1",
        "::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1", "ff0e::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
        "2002:7f00:1::1", "2002:a00:1::1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",
        "2001:db8::1",
    ],
)  # fmt: skip
def test_internal_addresses_are_blocked(address: str) -> None:
    assert is_blocked(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_not_blocked(address: str) -> None:
    assert not is_blocked(ipaddress.ip_address(address))


async def test_rebinding_public_then_loopback_never_connects_to_loopback(
    listener: Listener, tmp_path: Path
) -> None:
    resolver = ScriptedResolver([PUBLIC], ["127.0.0.1"])
    settings = settings_for("sqlite-memory", tmp_path, webhook_allow_private=False)
    async with open_notice(settings, webhook_resolver=resolver) as notice:
        user = new_user()
        url = f"http://rebind.example:{listener.port}/hook"
        put = await notice.call(
            "PUT", "/api/v1/notices/preferences/webhook", user, json={"url": url}
        )
        assert put.status_code == 200, put.text  # the check saw the public address
        delivery = await _send_and_wait(notice, user.user_id, status="failed")
    assert delivery["attempts"] == 1  # permanent: not retried
    assert "non-public address" in delivery["reason"]
    assert resolver.lookups == ["rebind.example", "rebind.example"]
    await asyncio.sleep(0.1)
    assert listener.connections == []


async def _send_and_wait(notice: NoticeApi, user_id: str, status: str) -> dict[str, Any]:
    sent = await notice.send(
        user_id=user_id,
        category="general",
        variables={"title": "t", "body": "b"},
        channels=["webhook"],
    )
    assert sent.status_code == 202, sent.text
    return await notice.wait_delivered(sent.json()["id"], "webhook", status=status)


async def test_a_loopback_answer_is_refused_at_registration_with_422(tmp_path: Path) -> None:
    resolver = ScriptedResolver(["127.0.0.1"])
    settings = settings_for("sqlite-memory", tmp_path, webhook_allow_private=False)
    async with open_notice(settings, webhook_resolver=resolver) as notice:
        for url in ["http://loopback.example/hook", "http://[::ffff:127.0.0.1]/hook"]:
            resp = await notice.call(
                "PUT", "/api/v1/notices/preferences/webhook", new_user(), json={"url": url}
            )
            assert resp.status_code == 422, resp.text
            assert resp.headers["content-type"] == "application/problem+json"
            assert "non-public" in resp.json()["detail"]


@pytest.mark.parametrize(
    "answers",
    [[["127.0.0.1"]], [[PUBLIC, "127.0.0.1"]], [["::1"]], [["10.0.0.7", PUBLIC]]],
)
async def test_delivery_to_a_name_answering_any_internal_address_makes_no_connection(
    listener: Listener, answers: list[list[str]]
) -> None:
    resolver = ScriptedResolver(*answers)
    network = NoInternet()
    failed = await _deliver(f"http://evil.example:{listener.port}/hook", resolver, inner=network)
    assert failed is not None
    assert failed.permanent
    assert "non-public" in failed.reason
    assert network.connects == []
    await asyncio.sleep(0.05)
    assert listener.connections == []


async def test_delivery_connects_to_exactly_the_checked_address(listener: Listener) -> None:
    resolver = ScriptedResolver([PUBLIC])
    network = NoInternet()
    failed = await _deliver(f"http://public.example:{listener.port}/hook", resolver, inner=network)
    assert failed is not None
    assert not failed.permanent
    assert network.connects == [(PUBLIC, listener.port)]
    assert resolver.lookups == ["public.example"]


async def test_a_connection_that_lands_on_loopback_is_closed_before_sending(
    listener: Listener,
) -> None:
    resolver = ScriptedResolver([PUBLIC])
    network = NoInternet(redirect={PUBLIC: "127.0.0.1"})
    failed = await _deliver(f"http://nat.example:{listener.port}/hook", resolver, inner=network)
    assert failed is not None
    assert failed.permanent
    assert "reached a non-public address" in failed.reason
    assert network.connects == [(PUBLIC, listener.port)]
    await asyncio.sleep(0.1)
    assert listener.requests == []  # the TCP handshake happened; not one request byte


async def test_allowed_loopback_still_connects_to_the_resolved_address_with_the_host_name(
    listener: Listener,
) -> None:
    resolver = ScriptedResolver(["127.0.0.1"])
    network = NoInternet()
    url = f"http://hook.example:{listener.port}/hook"
    assert await _deliver(url, resolver, inner=network, allow_private=True) is None
    assert network.connects == [("127.0.0.1", listener.port)]
    [request] = listener.requests
    assert request.startswith(b"POST /hook HTTP/1.1\r\n")
    assert f"host: hook.example:{listener.port}\r\n".encode() in request.lower()


async def test_tls_names_the_url_host_not_the_address(listener: Listener) -> None:
    resolver = ScriptedResolver(["127.0.0.1"])
    network = NoInternet()
    url = f"https://secure.example:{listener.port}/hook"
    failed = await _deliver(url, resolver, inner=network, allow_private=True)
    assert failed is not None
    assert network.connects == [("127.0.0.1", listener.port)]
    assert network.tls_names == ["secure.example"]


def test_allowing_private_webhooks_is_refused_outside_local_and_test() -> None:
    from pydantic import SecretStr

    from edgelib.keyring import Keyring

    secret = "9c1f-real-secret-from-the-vault"
    ring = SecretStr(
        Keyring.derived(
            "root", "sv-notice", destinations={"sv-log"}, callers={"gateway-api"}, kids=["k1"],
            signing_kid="k1",
        ).to_json()
    )  # fmt: skip
    for profile in ("local", "test"):
        assert Settings(
            profile=profile, service_secret=secret, service_keys=ring, webhook_allow_private=True
        )
    with pytest.raises(ValueError, match="webhook_allow_private"):
        Settings(
            profile="prod", service_secret=secret, service_keys=ring, webhook_allow_private=True
        )
    assert not Settings(
        profile="prod", service_secret=secret, service_keys=ring
    ).private_webhooks_allowed
