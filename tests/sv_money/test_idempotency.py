"""Idempotency keys, by Stripe's rules: same key and same request replays the saved
result (marked ``Idempotent-Replayed: true``); same key with another request is 422."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from sv_money.idempotency.service import forget_expired
from tests.sv_money.conftest import Money


async def test_same_key_same_body_replays_the_transfer_and_moves_money_once(
    money: Money,
) -> None:
    await money.topup("alice", 1_000)
    key = str(uuid.uuid4())
    first = await money.pay("alice", "bob", 300, key=key)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    again = await money.pay("alice", "bob", 300, key=key)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert (await money.balance("alice"))["balance"] == 700
    assert (await money.balance("bob"))["balance"] == 300


async def test_same_key_with_another_body_is_refused_and_moves_nothing(money: Money) -> None:
    await money.topup("alice", 1_000)
    key = str(uuid.uuid4())
    assert (await money.pay("alice", "bob", 300, key=key)).status_code == 201
    for payee, amount, currency in (("bob", 301, "USD"), ("erin", 300, "USD")):
        reused = await money.pay("alice", payee, amount, currency, key=key)
        assert reused.status_code == 422
        assert reused.headers["content-type"] == "application/problem+json"
        assert reused.json()["type"].endswith("/idempotency-key-reused")
    # A key names one operation: the same key on a hold is another request too.
    hold = await money.call(
        "alice",
        "POST",
        "/api/v1/wallet/holds",
        json={"to_username": "bob", "amount": 300, "currency": "USD"},
        key=key,
    )
    assert hold.status_code == 422
    assert (await money.balance("alice")) == {
        "currency": "USD",
        "balance": 700,
        "held": 0,
        "available": 700,
    }


async def test_keys_belong_to_their_caller(money: Money) -> None:
    await money.topup("alice", 1_000)
    await money.topup("bob", 1_000)
    key = "order-1"
    assert (await money.pay("alice", "erin", 100, key=key)).status_code == 201
    theirs = await money.pay("bob", "erin", 200, key=key)
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert (await money.balance("erin"))["balance"] == 300


async def test_cross_region_replay_returns_the_same_transfer(money: Money) -> None:
    await money.topup("alice", 1_000)
    key = str(uuid.uuid4())
    first = (await money.pay("alice", "dave", 250, key=key)).json()
    again = await money.pay("alice", "dave", 250, key=key)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first["id"]
    assert (await money.balance("dave"))["balance"] == 250
    assert (await money.pay("alice", "dave", 251, key=key)).status_code == 422


async def test_topup_and_hold_replays(money: Money) -> None:
    key = str(uuid.uuid4())
    body = {"username": "dave", "amount": 700, "currency": "USD"}
    first = await money.call("admin", "POST", "/api/v1/wallet/topups", json=body, key=key)
    again = await money.call("admin", "POST", "/api/v1/wallet/topups", json=body, key=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await money.call(
        "admin", "POST", "/api/v1/wallet/topups", json=body | {"amount": 1}, key=key
    )
    assert other.status_code == 422
    assert (await money.balance("dave"))["balance"] == 700

    hold_body = {"to_username": "carol", "amount": 100, "currency": "USD"}
    held = await money.call("dave", "POST", "/api/v1/wallet/holds", json=hold_body, key=key)
    again = await money.call("dave", "POST", "/api/v1/wallet/holds", json=hold_body, key=key)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == held.json()["id"]
    assert (await money.balance("dave"))["held"] == 100


async def _race_one_key(money: Money) -> None:
    await money.topup("alice", 10_000)
    key = str(uuid.uuid4())
    answers = await asyncio.gather(*(money.pay("alice", "bob", 100, key=key) for _ in range(12)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(1 for a in answers if "idempotent-replayed" not in a.headers) == 1
    assert (await money.balance("bob"))["balance"] == 100
    assert (await money.audit("east"))["ok"]


async def test_concurrent_requests_with_one_key_make_one_transfer_sqlite(money: Money) -> None:
    await _race_one_key(money)


@pytest.mark.integration
async def test_concurrent_requests_with_one_key_make_one_transfer_postgres(
    pg_money: Money,
) -> None:
    await _race_one_key(pg_money)


async def test_a_key_is_forgotten_after_its_retention(money: Money) -> None:
    await money.topup("alice", 1_000)
    key = str(uuid.uuid4())
    first = await money.pay("alice", "bob", 100, key=key)
    services = money.apps["east"].state.services
    assert await forget_expired(services.transactions, ttl=3600) == 0
    assert await forget_expired(services.transactions, ttl=1e-6) >= 1
    later = await money.pay("alice", "bob", 100, key=key)
    assert later.status_code == 201
    assert "idempotent-replayed" not in later.headers
    assert later.json()["id"] != first.json()["id"]
