"""Transfers in one region and across regions, top-ups, history, and bad input."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from tests.sv_money.conftest import Money, open_money


async def test_topup_then_same_region_transfer_moves_money_and_balances(money: Money) -> None:
    await money.topup("alice", 10_000)
    response = await money.pay("alice", "bob", 2_500)
    assert response.status_code == 201, response.text
    transfer = response.json()
    assert transfer["status"] == "completed"
    assert (transfer["from_username"], transfer["to_username"]) == ("alice", "bob")
    assert (await money.balance("alice"))["balance"] == 7_500
    assert (await money.balance("bob"))["balance"] == 2_500
    report = await money.audit("east")
    assert report["ok"], report


async def test_cross_region_transfer_completes_in_both_regions(money: Money) -> None:
    await money.topup("alice", 10_000)
    response = await money.pay("alice", "carol", 4_000)
    assert response.status_code == 201, response.text
    transfer = response.json()
    assert transfer["status"] == "completed"
    assert (transfer["from_region"], transfer["to_region"]) == ("east", "west")
    assert await money.balance("alice") == {
        "currency": "USD",
        "balance": 6_000,
        "held": 0,
        "available": 6_000,
    }
    assert (await money.balance("carol"))["balance"] == 4_000
    history = (await money.call("carol", "GET", "/api/v1/wallet/transfers")).json()
    assert [t["id"] for t in history["items"]] == [transfer["id"]]
    for region in ("east", "west"):
        report = await money.audit(region)
        assert report["ok"], report
        assert report["checked"]["cross_region_transfers"] == 1, report


async def test_insufficient_funds_is_refused_and_claims_no_key(money: Money) -> None:
    await money.topup("alice", 1_000)
    key = str(uuid.uuid4())
    refused = await money.pay("alice", "bob", 1_001, key=key)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/insufficient-funds")
    assert (await money.balance("alice"))["balance"] == 1_000
    # Nothing was claimed: once the money is there, the same key goes through.
    await money.topup("alice", 1)
    retried = await money.pay("alice", "bob", 1_001, key=key)
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert (await money.balance("alice"))["balance"] == 0


async def test_cross_region_transfer_cannot_overdraw_either(money: Money) -> None:
    await money.topup("carol", 500)
    refused = await money.pay("carol", "alice", 501)
    assert refused.status_code == 422
    assert (await money.balance("carol")) == {
        "currency": "USD",
        "balance": 500,
        "held": 0,
        "available": 500,
    }


async def test_bad_transfer_requests_are_problems_not_errors(money: Money) -> None:
    await money.topup("alice", 1_000)
    cases: list[tuple[object, int, str]] = [
        ({"to_username": "bob", "amount": "100", "currency": "USD"}, 422, "validation-error"),
        ({"to_username": "bob", "amount": 10.0, "currency": "USD"}, 422, "validation-error"),
        ({"to_username": "bob", "amount": True, "currency": "USD"}, 422, "validation-error"),
        ({"to_username": "bob", "amount": 0, "currency": "USD"}, 422, "validation-error"),
        ({"to_username": "bob", "amount": -5, "currency": "USD"}, 422, "validation-error"),
        ({"to_username": "bob", "amount": 10**16, "currency": "USD"}, 422, "validation-error"),
        ({"to_username": "bob", "amount": 5, "currency": "usd"}, 422, "validation-error"),
        ({"to_username": "bob", "amount": 5, "currency": "XYZ"}, 422, "validation-error"),
        ({"to_username": "bob", "amount": 5, "currency": "USD", "x": 1}, 422, "validation-error"),
        ({"to_username": "b o b", "amount": 5, "currency": "USD"}, 422, "validation-error"),
        ({"to_username": "nobody", "amount": 5, "currency": "USD"}, 422, "unknown-user"),
        ({"to_username": "alice", "amount": 5, "currency": "USD"}, 422, "self-transfer"),
        ({"to_username": "bob", "amount": 5, "currency": "EUR"}, 422, "insufficient-funds"),
        ([1, 2], 422, "validation-error"),
    ]
    for body, status, slug in cases:
        response = await money.call(
            "alice", "POST", "/api/v1/wallet/transfers", json=body, key=str(uuid.uuid4())
        )
        assert response.status_code == status, (body, response.text)
        assert response.json()["type"].endswith("/" + slug), (body, response.text)
    no_key = await money.call(
        "alice",
        "POST",
        "/api/v1/wallet/transfers",
        json={"to_username": "bob", "amount": 5, "currency": "USD"},
    )
    assert no_key.status_code == 400
    assert no_key.json()["type"].endswith("/idempotency-key-required")
    long_key = await money.call(
        "alice",
        "POST",
        "/api/v1/wallet/transfers",
        json={"to_username": "bob", "amount": 5, "currency": "USD"},
        key="k" * 256,
    )
    assert long_key.status_code == 400
    assert (await money.balance("alice"))["balance"] == 1_000


async def test_money_is_only_reachable_in_the_callers_home_region(money: Money) -> None:
    await money.topup("alice", 1_000)
    wrong = await money.call("alice", "GET", "/api/v1/wallet", region="west")
    assert wrong.status_code == 421
    assert wrong.json()["type"].endswith("/wrong-region")
    anonymous = await money.clients["east"].get("/api/v1/wallet")
    assert anonymous.status_code == 401
    internal = await money.clients["east"].put(
        "/internal/transfers/x", json={"origin_region": "west"}
    )
    assert internal.status_code == 401


async def test_history_pages_newest_first_with_a_cursor(money: Money) -> None:
    await money.topup("alice", 1_000)
    ids = []
    for amount in range(1, 24):
        response = await money.pay("alice", "bob", amount)
        assert response.status_code == 201
        ids.append(response.json()["id"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 10} | ({"cursor": cursor} if cursor else {})
        page = (await money.call("bob", "GET", "/api/v1/wallet/transfers", params=params)).json()
        seen += [t["id"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == ids[::-1]
    alice = await money.call("alice", "GET", "/api/v1/wallet/transfers", params={"limit": 100})
    assert len(alice.json()["items"]) == 24  # 23 payments and the top-up
    bad = await money.call("bob", "GET", "/api/v1/wallet/transfers", params={"cursor": "!!"})
    assert bad.status_code == 400
    assert bad.json()["type"].endswith("/bad-cursor")
    bad_limit = await money.call("bob", "GET", "/api/v1/wallet/transfers", params={"limit": 0})
    assert bad_limit.status_code == 422


async def test_a_transfer_is_visible_to_its_two_parties_only(money: Money) -> None:
    await money.topup("alice", 1_000)
    transfer = (await money.pay("alice", "bob", 10)).json()
    path = f"/api/v1/wallet/transfers/{transfer['id']}"
    assert (await money.call("alice", "GET", path)).json()["id"] == transfer["id"]
    assert (await money.call("bob", "GET", path)).json()["id"] == transfer["id"]
    assert (await money.call("erin", "GET", path)).status_code == 404


async def test_topup_lands_in_the_users_own_region(money: Money) -> None:
    # admin lives in east; carol in west: the top-up is forwarded and booked in west.
    topup = await money.topup("carol", 3_000, "EUR")
    assert (topup["kind"], topup["to_region"], topup["status"]) == ("topup", "west", "completed")
    assert (await money.balance("carol", "EUR"))["balance"] == 3_000
    assert (await money.audit("west"))["checked"]["entries"] == 1
    assert (await money.audit("east"))["checked"]["entries"] == 0


async def test_topup_reversal_is_a_new_entry_and_needs_the_money(money: Money) -> None:
    topup = await money.topup("carol", 300)
    spent = await money.topup("dave", 300)
    assert (await money.pay("dave", "carol", 200)).status_code == 201
    path = f"/api/v1/wallet/topups/{spent['id']}/reversal"
    short = await money.call("admin", "POST", path)
    assert short.status_code == 422
    assert short.json()["type"].endswith("/insufficient-funds")
    reversed_ = await money.call("admin", "POST", f"/api/v1/wallet/topups/{topup['id']}/reversal")
    assert reversed_.status_code == 200, reversed_.text
    assert reversed_.json()["status"] == "reversed"
    again = await money.call("admin", "POST", f"/api/v1/wallet/topups/{topup['id']}/reversal")
    assert again.json()["status"] == "reversed"
    assert (await money.balance("carol"))["balance"] == 200
    report = await money.audit("west")
    assert report["ok"], report
    assert report["checked"]["entries"] == 4  # two top-ups, a transfer, one reversal
    missing = await money.call("admin", "POST", "/api/v1/wallet/topups/nope/reversal")
    assert missing.status_code == 404


async def test_fees_go_to_the_fees_account(tmp_path: Path) -> None:
    async with open_money(tmp_path, transfer_fee_bps=150) as money:
        await money.topup("alice", 10_000)
        same = (await money.pay("alice", "bob", 1_000)).json()
        across = (await money.pay("alice", "carol", 2_000)).json()
        assert (same["fee"], across["fee"]) == (15, 30)
        assert (await money.balance("alice"))["balance"] == 10_000 - 1_015 - 2_030
        assert (await money.balance("bob"))["balance"] == 1_000
        assert (await money.balance("carol"))["balance"] == 2_000
        assert (await money.audit("east"))["ok"]
        refused = await money.pay("bob", "alice", 1_000)  # 1,000 + 15 fee > 1,000
        assert refused.status_code == 422


async def test_a_balance_past_the_limit_is_refused_not_an_error(
    money: Money, tmp_path: Path
) -> None:
    await money.topup("alice", 10)
    with sqlite3.connect(tmp_path / "east" / "data" / "sv-money-east.db") as db:
        db.execute("UPDATE accounts SET balance = ? WHERE owner_kind = 'user'", (2**62 - 5,))
    response = await money.call(
        "admin",
        "POST",
        "/api/v1/wallet/topups",
        json={"username": "alice", "amount": 10, "currency": "USD"},
        key=str(uuid.uuid4()),
    )
    assert response.status_code == 422
    assert response.json()["type"].endswith("/balance-limit")
    await money.topup("bob", 100)
    paid = await money.pay("bob", "alice", 10)
    assert paid.status_code == 422
    assert paid.json()["type"].endswith("/balance-limit")
    assert (await money.balance("bob"))["balance"] == 100
