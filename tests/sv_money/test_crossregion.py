"""Cross-region transfers when the other region is away, slow, or answers twice:
each one ends credited and captured, or refused and voided, and never both."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.sv_money.conftest import Money, open_money


def cut(money: Money, region: str) -> httpx.AsyncBaseTransport:
    """Make ``region``'s sv-money unreachable for the other services; returns it for mending."""
    return money.hosts.apps.pop(f"money-{region}")


def mend(money: Money, region: str, transport: httpx.AsyncBaseTransport) -> None:
    money.hosts.apps[f"money-{region}"] = transport


async def settled(money: Money, who: str, transfer_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await money.call(who, "GET", f"/api/v1/wallet/transfers/{transfer_id}")
        body: dict[str, Any] = response.json()
        if body["status"] != "pending" or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.05)


async def assert_audits_clean(money: Money) -> None:
    for region in ("east", "west"):
        report = await money.audit(region)
        assert report["ok"], report
        assert report["in_flight"] == 0, report


async def test_transfer_waits_while_the_payee_region_is_away_then_completes(
    money: Money,
) -> None:
    await money.topup("alice", 1_000)
    west = cut(money, "west")
    response = await money.pay("alice", "carol", 400)
    assert response.status_code == 201
    pending = response.json()
    assert pending["status"] == "pending"
    assert (await money.balance("alice"))["held"] == 400
    assert (await money.balance("alice"))["available"] == 600
    mend(money, "west", west)
    done = await settled(money, "alice", pending["id"])
    assert done["status"] == "completed"
    assert await money.balance("alice") == {
        "currency": "USD",
        "balance": 600,
        "held": 0,
        "available": 600,
    }
    assert (await money.balance("carol"))["balance"] == 400
    await assert_audits_clean(money)


async def test_a_transfer_refused_by_the_payee_region_is_voided(money: Money) -> None:
    await money.topup("alice", 1_000)
    west = cut(money, "west")
    pending = (await money.pay("alice", "carol", 400)).json()
    # West decides first (as if east had given up on it): refused for good.
    decided = await money.internal(
        "west", "PUT", f"/internal/transfers/{pending['id']}/abort", json={"origin_region": "east"}
    )
    assert decided.json()["outcome"] == "refused"
    mend(money, "west", west)
    done = await settled(money, "alice", pending["id"])
    assert done["status"] == "failed"
    assert done["failure_reason"]
    assert (await money.balance("alice"))["available"] == 1_000
    assert (await money.balance("carol"))["balance"] == 0
    await assert_audits_clean(money)


async def test_after_the_abort_delay_an_uncredited_transfer_is_refused_and_voided(
    tmp_path: Path,
) -> None:
    async with open_money(tmp_path, outbox_abort_after=0.3) as money:
        await money.topup("alice", 1_000)
        west = cut(money, "west")
        pending = (await money.pay("alice", "carol", 400)).json()
        await asyncio.sleep(0.5)
        mend(money, "west", west)
        done = await settled(money, "alice", pending["id"])
        assert done["status"] == "failed"
        assert (await money.balance("alice"))["available"] == 1_000
        # A credit arriving late (a delayed retry) finds the refusal, not the payee.
        late = await money.internal(
            "west", "PUT", f"/internal/transfers/{pending['id']}", json=_credit(money, pending)
        )
        assert late.json()["outcome"] == "refused"
        assert (await money.balance("carol"))["balance"] == 0
        await assert_audits_clean(money)


async def test_an_abort_after_the_credit_captures_instead(tmp_path: Path) -> None:
    async with open_money(tmp_path, outbox_abort_after=0.3) as money:
        await money.topup("alice", 1_000)
        west = cut(money, "west")
        pending = (await money.pay("alice", "carol", 400)).json()
        # The credit reached west but its answer was lost on the way back.
        credited = await money.internal(
            "west", "PUT", f"/internal/transfers/{pending['id']}", json=_credit(money, pending)
        )
        assert credited.json()["outcome"] == "credited"
        await asyncio.sleep(0.5)
        mend(money, "west", west)
        done = await settled(money, "alice", pending["id"])
        assert done["status"] == "completed"
        assert (await money.balance("alice"))["balance"] == 600
        assert (await money.balance("carol"))["balance"] == 400
        await assert_audits_clean(money)


def _credit(money: Money, transfer: dict[str, Any]) -> dict[str, Any]:
    return {
        "origin_region": "east",
        "kind": "transfer",
        "payer_id": money.users["alice"].user_id,
        "payer_username": "alice",
        "payee_id": money.users["carol"].user_id,
        "payee_username": "carol",
        "payee_region": "west",
        "amount": transfer["amount"],
        "currency": transfer["currency"],
        "memo": None,
    }


async def test_credit_is_idempotent_by_transfer_id(money: Money) -> None:
    transfer = {"id": str(uuid.uuid4()), "amount": 50, "currency": "USD"}
    path = f"/internal/transfers/{transfer['id']}"
    answers = await asyncio.gather(
        *(money.internal("west", "PUT", path, json=_credit(money, transfer)) for _ in range(5))
    )
    assert {a.json()["outcome"] for a in answers} == {"credited"}
    assert (await money.balance("carol"))["balance"] == 50
    other = await money.internal(
        "west", "PUT", path, json=_credit(money, transfer | {"amount": 51})
    )
    assert other.status_code == 409
    # East never made this transfer: both audits say so.
    for region in ("east", "west"):
        report = await money.audit(region)
        assert not report["ok"]
        assert [v["check"] for v in report["violations"]] == ["cross-region"]
        assert report["violations"][0]["ref"] == transfer["id"]


async def test_credit_refuses_what_this_region_cannot_honour(money: Money) -> None:
    transfer = {"id": str(uuid.uuid4()), "amount": 50, "currency": "USD"}
    body = _credit(money, transfer) | {"payee_region": "east"}
    refused = await money.internal(
        "west", "PUT", f"/internal/transfers/{transfer['id']}", json=body
    )
    assert refused.json()["outcome"] == "refused"
    malformed = await money.internal(
        "west", "PUT", "/internal/transfers/x", json={"origin_region": "east"}
    )
    assert malformed.status_code == 422


async def test_many_concurrent_cross_region_transfers_conserve_money(money: Money) -> None:
    for name in ("alice", "bob", "carol", "dave"):
        await money.topup(name, 1_000)
    pairs = [("alice", "carol"), ("carol", "alice"), ("bob", "dave"), ("dave", "bob")] * 10
    answers = await asyncio.gather(*(money.pay(a, b, 90) for a, b in pairs))
    assert {a.status_code for a in answers} <= {201, 422}
    total = 0
    for name in ("alice", "bob", "carol", "dave"):
        account = await money.balance(name)
        assert account["held"] == 0
        assert account["balance"] >= 0
        total += account["balance"]
    assert total == 4_000
    await assert_audits_clean(money)
