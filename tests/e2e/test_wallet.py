"""The wallet through the real stack: registered users, tokens, the gateway's permission
checks and regional routing, sv-region's directory, and both regions' sv-money."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.conftest import PORT_SHIFT, Stack

pytestmark = pytest.mark.e2e

PASSWORD = "correct-horse-battery-9"
AUTH_RBAC = f"http://127.0.0.1:{7103 + PORT_SHIFT}"


def admin_caller(stack: Stack, client: httpx.Client) -> dict[str, str]:
    """The bootstrap admin, given the admin role (idempotent; auth-jwt's bootstrap may
    grant it already)."""
    password = (stack.var_dir / "admin-password").read_text().strip()
    admin = login(stack, client, "admin", password)
    payload = admin["authorization"].split(".")[1]
    user_id = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
    body = orjson.dumps({"user": user_id, "role": "admin"})
    headers = {"content-type": "application/json"}
    headers |= stack.signer("auth-jwt").to("auth-rbac").sign("POST", "/internal/assignments", body)
    granted = client.post(AUTH_RBAC + "/internal/assignments", content=body, headers=headers)
    assert granted.status_code in (200, 201), granted.text
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        audit = client.get(stack.public + "/api/v1/wallet/audit", headers=bearer(admin))
        if audit.status_code != 403:
            break
        time.sleep(0.05)
    return admin


def register_and_login(stack: Stack, client: httpx.Client, region: str) -> dict[str, str]:
    username = f"wallet{uuid.uuid4().hex[:10]}"
    created = client.post(
        stack.public + "/api/v1/users",
        json={"username": username, "password": PASSWORD, "region": region},
    )
    assert created.status_code == 201, created.text
    return {"username": username} | login(stack, client, username, PASSWORD)


def login(stack: Stack, client: httpx.Client, username: str, password: str) -> dict[str, str]:
    resp = client.post(
        stack.public + "/api/v1/auth/login",
        json={"username": username, "password": password, "client_type": "web"},
    )
    assert resp.status_code == 200, resp.text
    return {"authorization": f"Bearer {resp.json()['access_token']}"}


def bearer(caller: dict[str, str], key: str | None = None) -> dict[str, str]:
    headers = {"authorization": caller["authorization"]}
    if key is not None:
        headers["idempotency-key"] = key
    return headers


def usd(client: httpx.Client, stack: Stack, caller: dict[str, str]) -> dict[str, Any]:
    resp = client.get(stack.public + "/api/v1/wallet", headers=bearer(caller))
    assert resp.status_code == 200, resp.text
    accounts: list[dict[str, Any]] = resp.json()
    return next(a for a in accounts if a["currency"] == "USD")


def test_topup_transfer_across_regions_replay_and_audit_through_the_gateway(
    stack: Stack, client: httpx.Client
) -> None:
    alice = register_and_login(stack, client, "east")
    bob = register_and_login(stack, client, "west")
    admin = admin_caller(stack, client)

    topup = {"username": alice["username"], "amount": 10_000, "currency": "USD"}
    url = stack.public + "/api/v1/wallet/topups"
    refused = client.post(url, json=topup, headers=bearer(alice, "t-1"))
    assert refused.status_code == 403  # wallet:topup is an admin permission
    made = client.post(url, json=topup, headers=bearer(admin, "t-1"))
    assert made.status_code == 201, made.text

    pay = {"to_username": bob["username"], "amount": 2_500, "currency": "USD"}
    url = stack.public + "/api/v1/wallet/transfers"
    first = client.post(url, json=pay, headers=bearer(alice, "order-1"))
    assert first.status_code == 201, first.text
    assert (first.json()["status"], first.json()["to_region"]) == ("completed", "west")
    again = client.post(url, json=pay, headers=bearer(alice, "order-1"))
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = client.post(url, json=pay | {"amount": 1}, headers=bearer(alice, "order-1"))
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"

    assert usd(client, stack, alice)["balance"] == 7_500
    assert usd(client, stack, bob)["balance"] == 2_500
    history = client.get(stack.public + "/api/v1/wallet/transfers", headers=bearer(bob))
    assert history.headers["x-edge-instance"].startswith("sv-money-west-")
    assert [t["id"] for t in history.json()["items"]] == [first.json()["id"]]

    for region in ("east", "west"):
        report = client.get(
            stack.public + "/api/v1/wallet/audit", params={"region": region}, headers=bearer(admin)
        )
        assert report.status_code == 200, report.text
        assert report.json()["ok"], report.json()
        assert report.json()["region"] == region
    plain = client.get(stack.public + "/api/v1/wallet/audit", headers=bearer(alice))
    assert plain.status_code == 403
