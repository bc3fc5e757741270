"""Identity on the real stack, through the gateway: accounts, tokens, sessions, revocation.

Runs in both flavours of the ``stack`` fixture (SQLite + in-process backends, and
PostgreSQL + Redis). With the in-process backend the gateways learn of revocations by
polling auth-jwt; with Redis they also hear them on pub/sub.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from edgelib.identity import GATEWAY_SERVICE, Identity
from tests.e2e.conftest import PORT_SHIFT, ROOT, Stack
from tests.token_forgery import bad_tokens, current_key
from tests.worker import free_port

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse 1"
AUTH_JWT = f"http://127.0.0.1:{7102 + PORT_SHIFT}"


def fresh_name() -> str:
    return f"e{uuid.uuid4().hex[:10]}"


def register(stack: Stack, client: httpx.Client, region: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"username": fresh_name(), "password": PASSWORD}
    if region:
        body["region"] = region
    resp = client.post(stack.public + "/api/v1/users", json=body)
    assert resp.status_code == 201, resp.text
    result: dict[str, Any] = resp.json()
    return result


def login(
    stack: Stack, client: httpx.Client, username: str, client_type: str = "web", *, base: str = ""
) -> dict[str, Any]:
    resp = client.post(
        (base or stack.public) + "/api/v1/auth/login",
        json={"username": username, "password": PASSWORD, "client_type": client_type},
    )
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


def me(client: httpx.Client, base: str, token: str) -> httpx.Response:
    return client.get(base + "/api/v1/users/me", headers={"authorization": f"Bearer {token}"})


def seconds_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"not within {timeout} s"
        time.sleep(interval)
    return time.monotonic() - started


def auth_database(stack: Stack) -> tuple[str, str | None]:
    if stack.flavour == "postgres-redis":
        return stack.env["EDGE_DATABASE_URL"], "auth_jwt"
    return f"sqlite+aiosqlite:///{stack.var_dir / 'data' / 'auth-jwt.db'}", None


def test_registration_for_west_through_the_gateway_is_served_by_west(
    stack: Stack, client: httpx.Client
) -> None:
    user = register(stack, client, region="west")
    assert user["region"] == "west"
    pair = login(stack, client, user["username"], "app")
    resp = me(client, stack.public, pair["access_token"])
    assert resp.status_code == 200
    assert resp.json()["id"] == user["id"]
    assert resp.headers["x-edge-instance"].startswith("sv-user-west-")
    duplicate = client.post(
        stack.public + "/api/v1/users",
        json={"username": user["username"].upper(), "password": PASSWORD, "region": "east"},
    )
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"] == "application/problem+json"


def test_access_token_verifies_with_joserfc_given_only_the_jwks(
    stack: Stack, client: httpx.Client
) -> None:
    user = register(stack, client)
    pair = login(stack, client, user["username"])
    document = client.get(stack.public + "/.well-known/jwks.json").json()
    token = jose_jwt.decode(pair["access_token"], KeySet.import_key_set(document), ["ES256"])
    jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": "edge-auth"},
        aud={"essential": True, "value": "edge"},
        sub={"essential": True, "value": user["id"]},
        region={"essential": True, "value": user["region"]},
    ).validate(token.claims)
    assert token.header["typ"] == "at+jwt"


def test_bad_tokens_are_refused_at_the_gateway_with_401_problem(
    stack: Stack, client: httpx.Client
) -> None:
    user = register(stack, client)
    good = login(stack, client, user["username"])["access_token"]
    kid, key = asyncio.run(current_key(*auth_database(stack)))
    assert kid == jwt.get_unverified_header(good)["kid"]
    for kind, token in bad_tokens(good, kid, key).items():
        resp = me(client, stack.public, token)
        assert resp.status_code == 401, (kind, resp.text)
        assert resp.headers["content-type"] == "application/problem+json", kind
        assert resp.headers["www-authenticate"].startswith("Bearer"), kind
        assert resp.json()["status"] == 401
    assert me(client, stack.public, good).status_code == 200
    assert client.get(stack.public + "/api/v1/users/me").status_code == 401


def test_refresh_rotates_and_a_replay_ends_that_session_only(
    stack: Stack, client: httpx.Client
) -> None:
    user = register(stack, client)
    web = login(stack, client, user["username"], "web")
    app = login(stack, client, user["username"], "app")
    url = stack.public + "/api/v1/auth/refresh"

    rotated = client.post(url, json={"refresh_token": web["refresh_token"]})
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != web["refresh_token"]
    replay = client.post(url, json={"refresh_token": web["refresh_token"]})
    assert replay.status_code == 401
    assert replay.json()["type"].endswith("/refresh-token-reused")
    newest = client.post(url, json={"refresh_token": rotated.json()["refresh_token"]})
    assert newest.status_code == 401
    # The replayed session's access tokens stop working at the gateway too.
    seconds_until(lambda: me(client, stack.public, web["access_token"]).status_code == 401, 1.0)
    assert client.post(url, json={"refresh_token": app["refresh_token"]}).status_code == 200
    assert me(client, stack.public, app["access_token"]).status_code == 200


def test_new_web_login_ends_the_old_web_session_at_the_gateway_within_a_second(
    stack: Stack, client: httpx.Client
) -> None:
    user = register(stack, client)
    first_web = login(stack, client, user["username"], "web")
    app = login(stack, client, user["username"], "app")
    assert me(client, stack.public, first_web["access_token"]).status_code == 200

    login(stack, client, user["username"], "web")
    took = seconds_until(
        lambda: me(client, stack.public, first_web["access_token"]).status_code == 401, 1.0
    )
    refused = me(client, stack.public, first_web["access_token"])
    assert refused.json()["type"].endswith("/session-revoked")
    assert me(client, stack.public, app["access_token"]).status_code == 200
    assert took < 1.0


def test_wrong_passwords_lock_the_account_then_the_right_one_works(
    stack: Stack, client: httpx.Client
) -> None:
    user = register(stack, client)
    url = stack.public + "/api/v1/auth/login"
    wrong = {"username": user["username"], "password": "wrong guess 1", "client_type": "web"}
    statuses = [client.post(url, json=wrong).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    locked = client.post(url, json={**wrong, "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.headers["content-type"] == "application/problem+json"
    retry_after = int(locked.headers["retry-after"])
    assert 1 <= retry_after <= 10
    time.sleep(retry_after + 0.2)
    assert client.post(url, json={**wrong, "password": PASSWORD}).status_code == 200


def test_logout_and_logout_all_through_the_gateway(stack: Stack, client: httpx.Client) -> None:
    user = register(stack, client)
    web = login(stack, client, user["username"], "web")["access_token"]
    app = login(stack, client, user["username"], "app")["access_token"]
    mini = login(stack, client, user["username"], "mini")["access_token"]

    def call(token: str, method: str, path: str) -> httpx.Response:
        return client.request(
            method, stack.public + path, headers={"authorization": f"Bearer {token}"}
        )

    sessions = call(web, "GET", "/api/v1/auth/sessions").json()["items"]
    assert {s["client_type"] for s in sessions} == {"web", "app", "mini"}
    assert call(app, "POST", "/api/v1/auth/logout").status_code == 204
    seconds_until(lambda: me(client, stack.public, app).status_code == 401, 1.0)
    assert me(client, stack.public, web).status_code == 200
    assert call(web, "POST", "/api/v1/auth/logout-all").status_code == 204
    seconds_until(lambda: me(client, stack.public, web).status_code == 401, 1.0)
    seconds_until(lambda: me(client, stack.public, mini).status_code == 401, 1.0)


def test_key_rotation_keeps_old_tokens_valid_and_new_ones_verify_at_once(
    stack: Stack, client: httpx.Client
) -> None:
    user = register(stack, client)
    before = login(stack, client, user["username"], "web")
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]
    # A gateway-signed identity without keys:rotate is refused by auth-jwt itself, as a
    # wrong route table would bring it (least privilege: the service checks again).
    caller = Identity(user["id"], user["username"], user["region"], "ops", "web")
    path = "/api/v1/auth/keys/rotate"
    signer = stack.signer(GATEWAY_SERVICE).to("auth-jwt")
    refused = client.post(
        AUTH_JWT + path, headers=signer.sign("POST", path, None, identity=caller.encode())
    )
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    # The admin call, as the gateway forwards the bootstrap admin (who holds keys:rotate).
    password = (stack.var_dir / "admin-password").read_text().strip()
    admin = client.post(
        stack.public + "/api/v1/auth/login",
        json={"username": "admin", "password": password, "client_type": "mini"},
    )
    assert admin.status_code == 200, admin.text
    claims = jwt.decode(admin.json()["access_token"], options={"verify_signature": False})
    operator = Identity(claims["sub"], "admin", claims["region"], claims["sid"], "mini")
    rotated = client.post(
        AUTH_JWT + path, headers=signer.sign("POST", path, None, identity=operator.encode())
    )
    assert rotated.status_code == 200, rotated.text
    new_kid = rotated.json()["kid"]
    assert new_kid != old_kid
    after = login(stack, client, user["username"], "app")
    assert jwt.get_unverified_header(after["access_token"])["kid"] == new_kid
    assert me(client, stack.public, after["access_token"]).status_code == 200
    assert me(client, stack.public, before["access_token"]).status_code == 200
    kids = [k["kid"] for k in client.get(stack.public + "/.well-known/jwks.json").json()["keys"]]
    assert kids[:1] == [new_kid]
    assert old_kid in kids


def test_bootstrap_admin_exists_with_its_password_in_a_0600_file(
    stack: Stack, client: httpx.Client
) -> None:
    path = stack.var_dir / "admin-password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    resp = client.post(
        stack.public + "/api/v1/auth/login",
        json={"username": "admin", "password": path.read_text().strip(), "client_type": "web"},
    )
    assert resp.status_code == 200


@dataclass
class SecondGateway:
    public: str
    admin: str


@pytest.fixture
def second_gateway(stack: Stack, client: httpx.Client) -> Iterator[SecondGateway]:
    """Another gateway process in front of the same stack (same topology, same backends)."""
    public, admin = free_port(), free_port()
    env = {
        **stack.env,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(public),
        "GATEWAY_ADMIN_PORT": str(admin),
        "GATEWAY_INSTANCE_ID": "gateway-api-2",
        "GATEWAY_TOPOLOGY": str(stack.var_dir.parent / "topology.toml"),
        "EDGE_VAR_DIR": str(stack.var_dir),
        # The gateway's keyring, as edgectl gives the first gateway.
        "EDGE_SERVICE_KEYS_FILE": str(stack.var_dir / "keys" / "gateway-api.json"),
        "PYTHONUNBUFFERED": "1",
    }
    log = (stack.var_dir / "log" / "gateway-api-2.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway_api"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def ready() -> bool:
        try:
            return client.get(f"http://127.0.0.1:{admin}/readyz").status_code == 200
        except httpx.HTTPError:
            assert proc.poll() is None, "the second gateway exited"
            return False

    try:
        seconds_until(ready, 30.0, 0.1)
        yield SecondGateway(f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_two_gateway_processes_both_honour_a_revocation_within_a_second(
    stack: Stack, client: httpx.Client, second_gateway: SecondGateway
) -> None:
    user = register(stack, client)
    pair = login(stack, client, user["username"], "web", base=second_gateway.public)
    token = pair["access_token"]
    gateways = [stack.public, second_gateway.public]
    assert [me(client, g, token).status_code for g in gateways] == [200, 200]

    logout = client.post(
        stack.public + "/api/v1/auth/logout", headers={"authorization": f"Bearer {token}"}
    )
    assert logout.status_code == 204
    ended = time.monotonic()
    took = {}
    for gateway in gateways:
        seconds_until(lambda g=gateway: me(client, g, token).status_code == 401, 1.0, 0.005)
        took[gateway] = time.monotonic() - ended
    assert max(took.values()) < 1.0
