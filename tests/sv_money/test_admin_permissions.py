"""sv-money checks wallet:topup and wallet:audit itself, on the gateway-signed identity."""

from __future__ import annotations

import uuid

import pytest

from tests.sv_money.conftest import Money


@pytest.mark.parametrize(
    ("method", "path", "json"),
    [
        (
            "POST",
            "/api/v1/wallet/topups",
            {"username": "alice", "amount": 1_000, "currency": "USD"},
        ),
        ("POST", "/api/v1/wallet/topups/5f0c4b7e-2d1a-4c8e-9b3a-6e1d2f4a7c90/reversal", None),
        ("GET", "/api/v1/wallet/audit", None),
    ],
)
async def test_a_user_without_the_permission_is_403_even_when_routed_here(
    money: Money, method: str, path: str, json: dict[str, object] | None
) -> None:
    resp = await money.call("alice", method, path, json=json, key=str(uuid.uuid4()))
    assert resp.status_code == 403
    assert resp.headers["content-type"] == "application/problem+json"
    assert "wallet:" in resp.json()["detail"]
    wallet = await money.call("alice", "GET", "/api/v1/wallet")
    assert all(account["balance"] == 0 for account in wallet.json())
    # The administrator, who holds the permissions, is served.
    assert (await money.call("admin", "GET", "/api/v1/wallet/audit")).status_code == 200
