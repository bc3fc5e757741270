"""TLS on the public port: HTTP/1.1 and HTTP/2 (ALPN), certificate files reloaded live."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.gateway.conftest import GatewayUnderTest, start_gateway


def write_certificate(directory: Path, serial: int) -> Path:
    """A self-signed certificate for 127.0.0.1 (``cert.pem``, ``key.pem``); returns the cert."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"edge-test-{serial}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (directory / "key.pem").write_bytes(key_pem)
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return directory / "cert.pem"


def served_serial(port: int) -> int:
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


@pytest.fixture
async def tls_gw(tmp_path: Path) -> AsyncIterator[tuple[GatewayUnderTest, Path]]:
    certs = tmp_path / "certs"
    certs.mkdir()
    cert = write_certificate(certs, serial=1)
    async for g in start_gateway(
        tmp_path,
        {"a": 1, "b": 1},
        tls_cert_file=cert,
        tls_key_file=certs / "key.pem",
        tls_check_interval=0.1,
    ):
        yield g, certs


async def test_http1_and_http2_by_alpn_over_tls(tls_gw: tuple[GatewayUnderTest, Path]) -> None:
    gw, certs = tls_gw
    assert gw.url.startswith("https://")
    trust = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    async with httpx.AsyncClient(verify=trust) as http1:
        resp = await http1.get(gw.url + "/api/v1/echo/x")
        assert (resp.status_code, resp.http_version) == (200, "HTTP/1.1")
    async with httpx.AsyncClient(verify=trust, http2=True) as http2:
        resp = await http2.get(gw.url + "/api/v1/echo/x")
        assert (resp.status_code, resp.http_version) == (200, "HTTP/2")
        denied = await http2.get(gw.url + "/api/v1/private/x")
        assert denied.status_code == 401
    # Plain HTTP on the TLS port is not served.
    port = int(gw.url.rsplit(":", 1)[1])
    with pytest.raises(httpx.HTTPError):
        async with httpx.AsyncClient() as plain:
            await plain.get(f"http://127.0.0.1:{port}/api/v1/echo/x")


async def test_new_certificate_files_are_used_for_new_connections_and_bad_ones_ignored(
    tls_gw: tuple[GatewayUnderTest, Path],
) -> None:
    gw, certs = tls_gw
    port = int(gw.url.rsplit(":", 1)[1])
    assert await asyncio.to_thread(served_serial, port) == 1
    write_certificate(certs, serial=2)
    deadline = asyncio.get_running_loop().time() + 5
    while await asyncio.to_thread(served_serial, port) != 2:
        assert asyncio.get_running_loop().time() < deadline, "the new certificate never served"
        await asyncio.sleep(0.1)
    # A broken pair (a certificate without its key) is not loaded: 2 stays.
    (certs / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nnot one\n")
    await asyncio.sleep(0.5)
    assert await asyncio.to_thread(served_serial, port) == 2
    trust = ssl.create_default_context()
    trust.check_hostname = False
    trust.verify_mode = ssl.CERT_NONE
    async with httpx.AsyncClient(verify=trust) as client:
        assert (await client.get(gw.url + "/api/v1/echo/x")).status_code == 200


def test_a_certificate_without_its_key_is_refused_at_start(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from gateway_api.config import Settings

    cert = write_certificate(tmp_path, serial=3)
    with pytest.raises(ValidationError, match="TLS_KEY_FILE"):
        Settings(tls_cert_file=cert)
