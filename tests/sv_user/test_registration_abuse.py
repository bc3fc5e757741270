"""sv-user registration under abuse: reserved names, the bootstrap's own endpoint, limits
per address and per name (429 + Retry-After), and the client address it believes."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest

from edgelib.identity import GATEWAY_SERVICE
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from sv_user.users.names import ReservedNames
from tests.identity_harness import identity_stack

PASSWORD = "correct horse 1"


def fresh() -> str:
    return f"r{uuid.uuid4().hex[:10]}"


def as_service(service: str, path: str, body: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(body)
    headers = ServiceSigner(service, DEV_SERVICE_SECRET).to("sv-user").sign("POST", path, raw)
    return raw, {**headers, "content-type": "application/json"}


@pytest.mark.parametrize(
    ("name", "reserved"),
    [
        ("admin", True),
        ("Admin", True),
        ("ADMIN", True),
        ("ad.min", True),
        ("adm1n", True),
        ("adrnin", True),
        ("r00t", True),
        ("Administrator", True),
        ("system", True),
        ("ops-lead", True),
        ("0ps.lead", True),
        ("admiral", False),
        ("rooted", False),
        ("alice", False),
    ],
)
def test_reserved_names_cover_case_and_look_alike_variants(name: str, reserved: bool) -> None:
    names = ReservedNames.from_setting("admin,root,administrator,system", "ops-lead")
    assert (name in names) is reserved


async def test_public_registration_of_a_privileged_name_is_409(tmp_path: Path) -> None:
    users = {"admin_username": "chief"}
    async with identity_stack(tmp_path, users=users) as stack:
        for name in ("admin", "ROOT", "Administrator", "system", "chief", "CH1EF"):
            resp = await stack.users("east").post(
                "/api/v1/users", json={"username": name, "password": PASSWORD}
            )
            assert resp.status_code == 409, (name, resp.text)
            assert resp.headers["content-type"] == "application/problem+json"
            assert resp.json()["type"].endswith("/username-reserved")


async def test_only_auth_jwt_creates_bootstrap_accounts(tmp_path: Path) -> None:
    async with identity_stack(tmp_path) as stack:
        path = "/internal/bootstrap-accounts"
        account = {
            "user_id": str(uuid.uuid4()),
            "username": "root",
            "password": PASSWORD,
            "region": "east",
        }
        for caller in ("sv-notice", GATEWAY_SERVICE):
            raw, headers = as_service(caller, path, account)
            refused = await stack.users("east").post(path, content=raw, headers=headers)
            # Refused by the endpoint's caller list, before the service is asked.
            assert refused.status_code == 403, refused.text
            assert refused.json()["type"].endswith("/forbidden")
        # Unsigned: 401.
        assert (await stack.users("east").post(path, json=account)).status_code == 401
        raw, headers = as_service("auth-jwt", path, account)
        created = await stack.users("east").post(path, content=raw, headers=headers)
        assert created.status_code == 201, created.text
        assert created.json()["id"] == account["user_id"]
        # A retry with the same id is the same account (signed anew: a replay is refused).
        raw, headers = as_service("auth-jwt", path, account)
        again = await stack.users("east").post(path, content=raw, headers=headers)
        assert again.status_code == 201
        assert again.json()["id"] == account["user_id"]
        # Another id for a name already held: 409, never the other account.
        raw, headers = as_service("auth-jwt", path, {**account, "user_id": str(uuid.uuid4())})
        taken = await stack.users("east").post(path, content=raw, headers=headers)
        assert taken.status_code == 409
        # The cross-region endpoint (open to sv-user only) stores no reserved name.
        peer_path = "/internal/users"
        raw, headers = as_service("sv-user", peer_path, {**account, "username": "system"})
        refused = await stack.users("east").post(peer_path, content=raw, headers=headers)
        assert refused.status_code == 409
        assert refused.json()["type"].endswith("/username-reserved")


async def test_registrations_are_limited_per_address_and_per_name(tmp_path: Path) -> None:
    limits = {
        "register_address_limit": 2,
        "register_address_window": 60.0,
        "register_username_limit": 2,
        "register_username_window": 60.0,
    }
    async with identity_stack(tmp_path, users=limits) as stack:
        east = stack.users("east")

        async def register(name: str, address: str) -> tuple[int, dict[str, str], str]:
            resp = await east.post(
                "/api/v1/users",
                json={"username": name, "password": PASSWORD},
                headers={"x-forwarded-for": address},
            )
            return resp.status_code, dict(resp.headers), resp.text

        codes = [(await register(fresh(), "198.51.100.7"))[0] for _ in range(2)]
        status, headers, text = await register(fresh(), "198.51.100.7")
        assert codes == [201, 201]
        assert status == 429, text
        assert headers["content-type"] == "application/problem+json"
        assert 1 <= int(headers["retry-after"]) <= 60
        assert (await register(fresh(), "198.51.100.8"))[0] == 201
        # One name tried from many addresses: the third attempt within the window.
        name = fresh()
        attempts = [(await register(name, f"203.0.113.{i}"))[0] for i in range(1, 4)]
        assert attempts == [201, 409, 429]


async def test_registration_answers_no_sooner_than_its_floor_whether_the_name_is_taken_or_not(
    tmp_path: Path,
) -> None:
    floor = 0.4
    async with identity_stack(tmp_path, users={"registration_min_seconds": floor}) as stack:
        client = stack.users("east")

        async def timed(body: dict[str, str], expected: int) -> tuple[float, str]:
            started = time.perf_counter()
            resp = await client.post("/api/v1/users", json=body)
            elapsed = time.perf_counter() - started
            assert resp.status_code == expected, resp.text
            return elapsed, resp.json().get("type", "")

        name = fresh()
        new, _ = await timed({"username": name, "password": PASSWORD}, 201)
        taken, kind = await timed({"username": name, "password": PASSWORD}, 409)
        assert kind.endswith("/username-taken")
        elsewhere, _ = await timed(
            {"username": fresh(), "password": PASSWORD, "region": "west"}, 201
        )
        assert min(new, taken, elsewhere) >= floor, (new, taken, elsewhere)
        # Refusals decided from the request alone tell nothing, and are not held back.
        reserved, kind = await timed({"username": "admin", "password": PASSWORD}, 409)
        assert kind.endswith("/username-reserved")
        weak, kind = await timed({"username": fresh(), "password": "aaaaaaaa"}, 422)
        assert kind.endswith("/weak-password")
        invalid, _ = await timed({"username": "x", "password": PASSWORD}, 422)
        assert max(reserved, weak, invalid) < floor, (reserved, weak, invalid)
