"""Accounts on a running stack: the bootstrap admin (with the admin role) and new users."""

from __future__ import annotations

import base64
import time
import uuid

import httpx
import orjson

from tests.e2e.conftest import PORT_SHIFT, Stack

PASSWORD = "correct-horse-battery-9"
AUTH_RBAC = f"http://127.0.0.1:{7103 + PORT_SHIFT}"


def login(stack: Stack, username: str, password: str, client_type: str = "web") -> dict[str, str]:
    """The authorization header of a fresh session of ``username``."""
    resp = httpx.post(
        stack.public + "/api/v1/auth/login",
        json={"username": username, "password": password, "client_type": client_type},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    return {"authorization": f"Bearer {resp.json()['access_token']}"}


def user_id(headers: dict[str, str]) -> str:
    payload = headers["authorization"].split(".")[1]
    return str(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


def admin_password(stack: Stack) -> str:
    return (stack.var_dir / "admin-password").read_text().strip()


def admin(stack: Stack) -> dict[str, str]:
    """The bootstrap admin's header, its admin role granted and in effect at the gateway."""
    headers = login(stack, "admin", admin_password(stack))
    body = orjson.dumps({"user": user_id(headers), "role": "admin"})
    signer = stack.signer("auth-jwt").to("auth-rbac")
    signed = {"content-type": "application/json"} | signer.sign(
        "POST", "/internal/assignments", body
    )
    granted = httpx.post(AUTH_RBAC + "/internal/assignments", content=body, headers=signed)
    assert granted.status_code in (200, 201), granted.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        probe = httpx.get(stack.public + "/api/v1/wallet/audit", headers=headers, timeout=15)
        if probe.status_code != 403:
            return headers
        time.sleep(0.05)
    raise AssertionError("the admin role did not take effect")


def register(stack: Stack, region: str, prefix: str = "u") -> tuple[str, dict[str, str]]:
    """A new user of ``region``: its name and a session's header."""
    username = f"{prefix}{uuid.uuid4().hex[:10]}"
    created = httpx.post(
        stack.public + "/api/v1/users",
        json={"username": username, "password": PASSWORD, "region": region},
        timeout=15,
    )
    assert created.status_code == 201, created.text
    return username, login(stack, username, PASSWORD)
