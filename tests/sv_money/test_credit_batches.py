"""Cross-region transfers in batches: the payer's region books their first step together,
asks the payee's region to credit many of them in one call (``POST /internal/credits``),
and settles the answers together; every transfer still ends credited and captured, or
refused and voided, exactly once, whatever fails in the middle of a batch."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from sv_money.tables import inbound, transfers
from tests.sv_money.conftest import Money, open_money
from tests.sv_money.test_crossregion import assert_audits_clean, settled

CREDITS = "/internal/credits"


def _item(money: Money, payee: str = "carol", amount: int = 50, **changes: Any) -> dict[str, Any]:
    return {
        "transfer_id": str(uuid.uuid4()),
        "origin_region": "east",
        "kind": "transfer",
        "payer_id": money.users["alice"].user_id,
        "payer_username": "alice",
        "payee_id": money.users[payee].user_id,
        "payee_username": payee,
        "payee_region": "west",
        "amount": amount,
        "currency": "USD",
        "memo": None,
    } | changes


class Tap(httpx.AsyncBaseTransport):
    """In front of one region's app: counts credit batches, and can delay them or lose
    their answers (the request is handled there; the caller gets a network error)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.batches: list[int] = []
        self.delay = 0.0
        self.lose_answers = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == CREDITS:
            self.batches.append(request.content.count(b'"transfer_id"'))
            await asyncio.sleep(self.delay)
        response = await self.inner.handle_async_request(request)
        if request.url.path == CREDITS and self.lose_answers:
            await response.aread()
            raise httpx.ReadError("connection reset after the request was handled", request=request)
        return response


def tap(money: Money, region: str) -> Tap:
    tapped = Tap(money.hosts.apps[f"money-{region}"])
    money.hosts.apps[f"money-{region}"] = tapped
    return tapped


async def test_batch_credit_is_for_other_regions_sv_money_only(money: Money) -> None:
    body = {"items": [_item(money)]}
    unsigned = await money.clients["west"].post(CREDITS, json=body)
    assert unsigned.status_code == 401
    assert unsigned.headers["content-type"].startswith("application/problem+json")
    content = httpx.Request("POST", "/", json=body).content
    for caller in ("sv-notice", "gateway-api"):
        headers = (
            ServiceSigner(caller, DEV_SERVICE_SECRET).to("sv-money").sign("POST", CREDITS, content)
        )
        headers["content-type"] = "application/json"
        refused = await money.clients["west"].post(CREDITS, content=content, headers=headers)
        assert refused.status_code == 403, (caller, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await money.balance("carol"))["balance"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"items": []},
        {"items": "many"},
        {"items": [{"transfer_id": "x"}]},
        {"items": [{"amount": -5}]},
        {"items": [], "extra": 1},
    ],
)
async def test_batch_credit_answers_bad_input_with_a_problem(
    money: Money, body: dict[str, Any]
) -> None:
    response = await money.internal("west", "POST", CREDITS, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_batch_credit_refuses_duplicates_too_many_items_and_other_terms(
    money: Money,
) -> None:
    one = _item(money)
    twice = await money.internal("west", "POST", CREDITS, json={"items": [one, one]})
    assert twice.status_code == 422
    too_many = [_item(money) for _ in range(501)]
    assert (
        await money.internal("west", "POST", CREDITS, json={"items": too_many})
    ).status_code == 422
    negative = await money.internal(
        "west", "POST", CREDITS, json={"items": [_item(money, amount=-1)]}
    )
    assert negative.status_code == 422
    not_json = await money.clients["west"].post(
        CREDITS,
        content=b"{",
        headers=ServiceSigner("sv-money", DEV_SERVICE_SECRET)
        .to("sv-money")
        .sign("POST", CREDITS, b"{")
        | {"content-type": "application/json"},
    )
    assert not_json.status_code == 422
    assert not_json.headers["content-type"].startswith("application/problem+json")
    assert (await money.balance("carol"))["balance"] == 0


async def test_batch_credit_decides_each_transfer_once(money: Money) -> None:
    items = [
        _item(money, "carol", 10),
        _item(money, "dave", 20),
        _item(money, "carol", 30, payee_region="east"),  # not a payee of west: refused
    ]
    first = await money.internal("west", "POST", CREDITS, json={"items": items})
    assert first.status_code == 200, first.text
    outcomes = [(r["transfer_id"], r["outcome"]) for r in first.json()["items"]]
    assert outcomes == [
        (items[0]["transfer_id"], "credited"),
        (items[1]["transfer_id"], "credited"),
        (items[2]["transfer_id"], "refused"),
    ]
    # Asked again, in another order and with a new one: the same decisions, no new credit.
    new = _item(money, "carol", 5)
    again = await money.internal(
        "west", "POST", CREDITS, json={"items": [items[2], new, items[1], items[0]]}
    )
    assert [r["outcome"] for r in again.json()["items"]] == [
        "refused",
        "credited",
        "credited",
        "credited",
    ]
    # A single credit request of a batched transfer finds the batch's decision.
    single = await money.internal(
        "west",
        "PUT",
        f"/internal/transfers/{items[0]['transfer_id']}",
        json={k: v for k, v in items[0].items() if k != "transfer_id"},
    )
    assert single.json()["outcome"] == "credited"
    assert (await money.balance("carol"))["balance"] == 15
    assert (await money.balance("dave"))["balance"] == 20
    # Other terms under a credited id: no decision for it, the others unaffected.
    changed = items[0] | {"amount": 11}
    mixed = await money.internal("west", "POST", CREDITS, json={"items": [changed, items[1]]})
    assert mixed.json()["items"] == [
        {
            "transfer_id": items[0]["transfer_id"],
            "outcome": None,
            "reason": None,
            "problem": "transfer-mismatch",
        },
        {
            "transfer_id": items[1]["transfer_id"],
            "outcome": "credited",
            "reason": None,
            "problem": None,
        },
    ]
    assert (await money.balance("carol"))["balance"] == 15


async def _count(money: Money, region: str, statement: Any) -> int:
    tx = money.apps[region].state.services.transactions
    return int(await tx.read(lambda conn: _scalar(conn, statement)))


async def _scalar(conn: Any, statement: Any) -> Any:
    return (await conn.execute(statement)).scalar_one()


async def test_a_credit_that_cannot_be_written_fails_alone_and_writes_nothing(
    money: Money,
) -> None:
    """The batch's one transaction fails in the middle (a transfer row of that id exists
    already), so it is rolled back and each transfer is decided alone: the others are
    credited, the one that cannot be written gets no decision and changes nothing."""
    await money.topup("carol", 100)
    local = (await money.pay("carol", "dave", 1)).json()  # a west transfer: its id is taken
    items = [_item(money, "carol", 10), _item(money, "dave", 20, transfer_id=local["id"])]
    items.append(_item(money, "carol", 30))
    before = await _count(money, "west", select(func.count()).select_from(inbound))
    response = await money.internal("west", "POST", CREDITS, json={"items": items})
    assert response.status_code == 200, response.text
    results = response.json()["items"]
    assert [r["outcome"] for r in results] == ["credited", None, "credited"]
    assert results[1]["problem"] == "unavailable"
    # Nothing half-written for it: no decision, no credit, its id still the local transfer's.
    assert await _count(money, "west", select(func.count()).select_from(inbound)) == before + 2
    lookup = await money.internal("west", "GET", f"/internal/inbound/{local['id']}")
    assert lookup.status_code == 404
    assert (await money.balance("carol"))["balance"] == 100 - 1 + 10 + 30
    assert (await money.balance("dave"))["balance"] == 1
    same_id = select(func.count()).select_from(transfers).where(transfers.c.id == local["id"])
    assert await _count(money, "west", same_id) == 1


async def test_concurrent_cross_region_transfers_share_credit_calls(money: Money) -> None:
    await money.topup("alice", 10_000)
    west = tap(money, "west")
    west.delay = 0.2  # while one call is out, the next transfers queue for the next call
    answers = await asyncio.gather(*(money.pay("alice", "carol", 10) for _ in range(40)))
    assert {a.status_code for a in answers} == {201}
    assert {a.json()["status"] for a in answers} == {"completed"}
    assert sum(west.batches) == 40
    assert len(west.batches) <= 10, west.batches
    assert (await money.balance("alice")) == {
        "currency": "USD",
        "balance": 9_600,
        "held": 0,
        "available": 9_600,
    }
    assert (await money.balance("carol"))["balance"] == 400
    await assert_audits_clean(money)


async def test_a_batch_whose_answer_is_lost_settles_each_transfer_once_later(
    tmp_path: Path,
) -> None:
    """West credits a whole batch but its answer never reaches east: east half-wrote
    nothing (every transfer pending, its money held), and the recovery worker later gets
    west's decisions again and settles each transfer once."""
    async with open_money(tmp_path, peer_timeout=0.2) as money:
        await money.topup("alice", 1_000)
        west = tap(money, "west")
        west.lose_answers = True
        answers = await asyncio.gather(*(money.pay("alice", "carol", 100) for _ in range(6)))
        assert {a.json()["status"] for a in answers} == {"pending"}
        assert west.batches
        assert (await money.balance("alice"))["held"] == 600
        assert (await money.balance("alice"))["balance"] == 1_000
        assert (await money.balance("carol"))["balance"] == 600  # credited there, once
        west.lose_answers = False
        for answer in answers:
            done = await settled(money, "alice", answer.json()["id"], timeout=20)
            assert done["status"] == "completed"
        assert await money.balance("alice") == {
            "currency": "USD",
            "balance": 400,
            "held": 0,
            "available": 400,
        }
        assert (await money.balance("carol"))["balance"] == 600
        await assert_audits_clean(money)


async def _both_ways(money: Money) -> None:
    for name in ("alice", "bob", "carol", "dave"):
        await money.topup(name, 1_000)
    pairs = [("alice", "carol"), ("carol", "alice"), ("bob", "dave"), ("dave", "bob")] * 15
    answers = await asyncio.gather(*(money.pay(a, b, 70) for a, b in pairs))
    assert {a.status_code for a in answers} <= {201, 422}
    assert {a.json().get("status") for a in answers if a.status_code == 201} == {"completed"}
    refused = [a for a in answers if a.status_code == 422]
    assert all(a.json()["type"].endswith("insufficient-funds") for a in refused)
    total = 0
    for name in ("alice", "bob", "carol", "dave"):
        account = await money.balance(name)
        assert account["held"] == 0
        assert account["balance"] >= 0
        total += account["balance"]
    assert total == 4_000
    await assert_audits_clean(money)


async def test_batched_transfers_both_ways_conserve_money(money: Money) -> None:
    await _both_ways(money)


@pytest.mark.integration
async def test_batched_transfers_both_ways_conserve_money_on_postgres(pg_money: Money) -> None:
    await _both_ways(pg_money)
