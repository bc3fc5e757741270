"""Holds: reserve, capture (all or part), void, and automatic expiry that frees the funds."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from tests.sv_money.conftest import Money, open_money


async def hold(money: Money, who: str, payee: str, amount: int, **extra: Any) -> dict[str, Any]:
    response = await money.call(
        who,
        "POST",
        "/api/v1/wallet/holds",
        json={"to_username": payee, "amount": amount, "currency": "USD"} | extra,
        key=str(uuid.uuid4()),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_hold_reserves_funds_and_full_capture_pays_the_payee(money: Money) -> None:
    await money.topup("alice", 1_000)
    held = await hold(money, "alice", "bob", 600)
    assert held["status"] == "pending"
    assert await money.balance("alice") == {
        "currency": "USD",
        "balance": 1_000,
        "held": 600,
        "available": 400,
    }
    # Held money cannot be spent twice.
    assert (await money.pay("alice", "erin", 401)).status_code == 422
    captured = await money.call("alice", "POST", f"/api/v1/wallet/holds/{held['id']}/capture")
    assert captured.status_code == 200, captured.text
    assert (captured.json()["status"], captured.json()["captured"]) == ("captured", 600)
    assert (await money.balance("alice"))["balance"] == 400
    assert (await money.balance("alice"))["held"] == 0
    assert (await money.balance("bob"))["balance"] == 600
    # Capturing again changes nothing; another amount is refused.
    again = await money.call("alice", "POST", f"/api/v1/wallet/holds/{held['id']}/capture")
    assert again.json()["status"] == "captured"
    other = await money.call(
        "alice", "POST", f"/api/v1/wallet/holds/{held['id']}/capture", json={"amount": 5}
    )
    assert other.status_code == 409
    assert (
        await money.call("alice", "POST", f"/api/v1/wallet/holds/{held['id']}/void")
    ).status_code == 409
    assert (await money.audit("east"))["ok"]


async def test_partial_capture_releases_the_rest(money: Money) -> None:
    await money.topup("alice", 1_000)
    held = await hold(money, "alice", "bob", 600)
    path = f"/api/v1/wallet/holds/{held['id']}/capture"
    too_much = await money.call("alice", "POST", path, json={"amount": 601})
    assert too_much.status_code == 422
    captured = await money.call("alice", "POST", path, json={"amount": 250})
    assert (captured.json()["status"], captured.json()["captured"]) == ("captured", 250)
    assert await money.balance("alice") == {
        "currency": "USD",
        "balance": 750,
        "held": 0,
        "available": 750,
    }
    assert (await money.balance("bob"))["balance"] == 250
    history = (await money.call("bob", "GET", "/api/v1/wallet/transfers")).json()["items"]
    assert [(t["kind"], t["amount"], t["hold_id"]) for t in history] == [
        ("capture", 250, held["id"])
    ]


async def test_void_releases_the_funds_once(money: Money) -> None:
    await money.topup("alice", 1_000)
    held = await hold(money, "alice", "bob", 600)
    path = f"/api/v1/wallet/holds/{held['id']}"
    voided = await money.call("alice", "POST", path + "/void")
    assert voided.json()["status"] == "voided"
    assert (await money.call("alice", "POST", path + "/void")).json()["status"] == "voided"
    assert (await money.balance("alice"))["available"] == 1_000
    assert (await money.call("alice", "POST", path + "/capture")).status_code == 409
    # Only its owner sees or touches a hold.
    assert (await money.call("bob", "GET", path)).status_code == 404
    assert (await money.call("bob", "POST", path + "/void")).status_code == 404
    assert (await money.audit("east"))["ok"]


async def test_expired_holds_are_voided_and_their_funds_released(money: Money) -> None:
    await money.topup("alice", 1_000)
    short = await hold(money, "alice", "bob", 400, expires_in=1)
    lasting = await hold(money, "alice", "bob", 100, expires_in=3600)
    assert (await money.balance("alice"))["available"] == 500
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = await money.call("alice", "GET", f"/api/v1/wallet/holds/{short['id']}")
        if state.json()["status"] != "pending":
            break
        await asyncio.sleep(0.1)
    assert state.json()["status"] == "expired"
    assert await money.balance("alice") == {
        "currency": "USD",
        "balance": 1_000,
        "held": 100,
        "available": 900,
    }
    late = await money.call("alice", "POST", f"/api/v1/wallet/holds/{short['id']}/capture")
    assert late.status_code == 409
    still = await money.call("alice", "GET", f"/api/v1/wallet/holds/{lasting['id']}")
    assert still.json()["status"] == "pending"
    assert (await money.audit("east"))["ok"]


async def test_a_hold_past_its_time_cannot_be_captured_before_the_sweep(tmp_path: Path) -> None:
    async with open_money(tmp_path, hold_sweep_interval=3600) as money:
        await money.topup("alice", 1_000)
        held = await hold(money, "alice", "bob", 400, expires_in=1)
        await asyncio.sleep(1.1)
        late = await money.call("alice", "POST", f"/api/v1/wallet/holds/{held['id']}/capture")
        assert late.status_code == 409
        assert late.json()["type"].endswith("/hold-expired")
        assert (await money.balance("bob"))["balance"] == 0


async def test_capture_to_another_region_crosses_once(money: Money) -> None:
    await money.topup("alice", 1_000)
    held = await hold(money, "alice", "carol", 500)
    path = f"/api/v1/wallet/holds/{held['id']}/capture"
    captured = await money.call("alice", "POST", path, json={"amount": 300})
    assert (captured.json()["status"], captured.json()["captured"]) == ("captured", 300)
    again = await money.call("alice", "POST", path, json={"amount": 300})
    assert again.json()["status"] == "captured"
    assert (await money.balance("alice"))["balance"] == 700
    assert (await money.balance("alice"))["held"] == 0
    assert (await money.balance("carol"))["balance"] == 300
    for region in ("east", "west"):
        assert (await money.audit(region))["ok"]


async def test_bad_hold_requests_are_problems(money: Money) -> None:
    await money.topup("alice", 100)
    for body, slug in (
        ({"to_username": "bob", "amount": 101, "currency": "USD"}, "insufficient-funds"),
        (
            {"to_username": "bob", "amount": 1, "currency": "USD", "expires_in": 0},
            "validation-error",
        ),
        (
            {"to_username": "bob", "amount": 1, "currency": "USD", "expires_in": 10**9},
            "hold-too-long",
        ),
        ({"to_username": "alice", "amount": 1, "currency": "USD"}, "self-transfer"),
    ):
        response = await money.call(
            "alice", "POST", "/api/v1/wallet/holds", json=body, key=str(uuid.uuid4())
        )
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("/" + slug)
    missing = await money.call("alice", "POST", "/api/v1/wallet/holds/nope/capture")
    assert missing.status_code == 404
    bad_amount = await money.call(
        "alice", "POST", "/api/v1/wallet/holds/nope/capture", json={"amount": "all"}
    )
    assert bad_amount.status_code == 422
