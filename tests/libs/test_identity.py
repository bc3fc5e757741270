"""Services accept a caller identity only when the gateway signed it."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import httpx
from fastapi import FastAPI
from pydantic_settings import SettingsConfigDict

from edgelib.app import create_service_app
from edgelib.deps import CurrentUser, OptionalUser
from edgelib.identity import Identity
from edgelib.settings import DEV_SERVICE_SECRET, ServiceSettings
from edgelib.signing import ServiceSigner
from tests.helpers import running

ALICE = Identity("u-1", "alice", "east", "s-1", "web")


class IdSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IDT_", extra="ignore")
    service_name: ClassVar[str] = "idt"


def app_with_me(tmp_path: Path) -> FastAPI:
    app = create_service_app(IdSettings(var_dir=tmp_path), title="idt")

    @app.get("/api/v1/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"id": user.user_id, "name": user.username}

    @app.get("/api/v1/maybe")
    async def maybe(user: OptionalUser) -> dict[str, str | None]:
        return {"id": user.user_id if user else None}

    return app


def gateway_headers(
    target: str,
    identity: Identity,
    *,
    as_service: str = "gateway-api",
    secret: str = DEV_SERVICE_SECRET,
) -> dict[str, str]:
    return (
        ServiceSigner(as_service, secret)
        .to("idt")
        .sign("GET", target, None, identity=identity.encode())
    )


async def test_identity_round_trips_through_its_header() -> None:
    assert Identity.decode(ALICE.encode()) == ALICE


async def test_gateway_signed_identity_is_accepted(tmp_path: Path) -> None:
    async with running(app_with_me(tmp_path)) as client:
        resp = await client.get("/api/v1/me", headers=gateway_headers("/api/v1/me", ALICE))
    assert resp.json() == {"id": "u-1", "name": "alice"}


async def test_bare_identity_header_from_a_client_is_refused(tmp_path: Path) -> None:
    async with running(app_with_me(tmp_path)) as client:
        resp = await client.get("/api/v1/me", headers={"x-edge-identity": ALICE.encode()})
        maybe = await client.get("/api/v1/maybe", headers={"x-edge-identity": ALICE.encode()})
    assert resp.status_code == 401
    assert maybe.status_code == 401


async def test_identity_signed_by_another_service_is_refused(tmp_path: Path) -> None:
    headers = gateway_headers("/api/v1/me", ALICE, as_service="sv-user")
    async with running(app_with_me(tmp_path)) as client:
        assert (await client.get("/api/v1/me", headers=headers)).status_code == 401


async def test_identity_swapped_after_signing_is_refused(tmp_path: Path) -> None:
    headers = gateway_headers("/api/v1/me", ALICE)
    headers["x-edge-identity"] = Identity("u-2", "mallory", "east", "s-9", "web").encode()
    async with running(app_with_me(tmp_path)) as client:
        assert (await client.get("/api/v1/me", headers=headers)).status_code == 401


async def test_signature_for_another_path_is_refused(tmp_path: Path) -> None:
    headers = gateway_headers("/api/v1/maybe", ALICE)
    async with running(app_with_me(tmp_path)) as client:
        assert (await client.get("/api/v1/me", headers=headers)).status_code == 401


async def test_missing_identity_is_401_or_none(tmp_path: Path) -> None:
    async with running(app_with_me(tmp_path)) as client:
        assert (await client.get("/api/v1/me")).status_code == 401
        assert (await client.get("/api/v1/maybe")).json() == {"id": None}
    assert isinstance(client, httpx.AsyncClient)


def test_identity_header_carries_tenant_and_app_only_when_set() -> None:
    plain = ALICE.encode()
    assert "tenant" not in plain
    assert "app" not in plain
    assert Identity.decode(plain) == ALICE
    assert Identity.decode(plain).tenant == "default"
    robot = Identity("app_1", "app_1", "east", "s-2", "service", tenant="acme", app="app_1")
    assert Identity.decode(robot.encode()) == robot
    assert (
        Identity.decode(Identity("u-1", "a", "east", "s", "web", tenant="acme").encode()).app == ""
    )


def test_the_header_decoder_agrees_with_parse_qsl_on_any_input() -> None:
    """The fast decoder accepts and refuses exactly what ``parse_qsl(strict)`` does."""
    import random
    from urllib.parse import parse_qsl

    from edgelib.identity import _form_fields

    rng = random.Random(23)
    alphabet = "ab=&%+2F0Zé;"
    for _ in range(20_000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        try:
            expected: dict[str, str] | None = dict(
                parse_qsl(value, keep_blank_values=True, strict_parsing=True)
            )
        except ValueError:
            expected = None
        try:
            got: dict[str, str] | None = _form_fields(value)
        except ValueError:
            got = None
        assert got == expected, value
    assert Identity.decode(ALICE.encode()) == ALICE
    odd = Identity("u 1", "al+ice&co", "east", "s=1", "web", tenant="t%1", app="app-1")
    assert Identity.decode(odd.encode()) == odd
