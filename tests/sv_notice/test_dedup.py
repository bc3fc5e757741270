"""A repeated de-duplication key (or event id) makes one notice, however the repeats arrive."""

from __future__ import annotations

import asyncio

from tests.sv_notice.conftest import ADMIN, TRANSFER_VARS, NoticeApi, new_user


async def test_repeated_dedup_key_produces_one_notice(notice: NoticeApi) -> None:
    user = new_user()
    fields = {
        "user_id": user.user_id,
        "category": "wallet.transfer_received",
        "variables": TRANSFER_VARS,
        "dedup_key": "transfer:t-1:received",
    }
    first = await notice.send(**fields)
    second = await notice.send(**fields)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["duplicate"] is True
    assert second.json()["id"] == first.json()["id"]
    # Concurrent repeats too.
    burst = await asyncio.gather(*(notice.send(**fields) for _ in range(8)))
    assert {r.status_code for r in burst} == {200}
    assert {r.json()["id"] for r in burst} == {first.json()["id"]}

    inbox = await notice.inbox(user)
    assert len(inbox["items"]) == 1
    deliveries = await notice.call(
        "GET", "/api/v1/notices/admin/deliveries", ADMIN, params={"user_id": user.user_id}
    )
    assert sorted(d["channel"] for d in deliveries.json()["items"]) == [
        "email",
        "in_app",
        "realtime",
        "webhook",
    ]


async def test_concurrent_first_sends_with_one_key_make_one_notice(notice: NoticeApi) -> None:
    user = new_user()
    fields = {
        "user_id": user.user_id,
        "category": "general",
        "variables": {"title": "once", "body": "only once"},
        "dedup_key": "race-1",
    }
    results = await asyncio.gather(*(notice.send(**fields) for _ in range(6)))
    assert sorted(r.status_code for r in results) == [200] * 5 + [202]
    assert len({r.json()["id"] for r in results}) == 1
    assert len((await notice.inbox(user))["items"]) == 1


async def test_repeated_event_id_produces_one_notice(notice: NoticeApi) -> None:
    user = new_user()
    event = {
        "id": "transfer-received:t-9",
        "type": "wallet.transfer_received",
        "user_id": user.user_id,
        "region": "east",
        "data": TRANSFER_VARS,
        "source": "sv-money",
    }
    first = await notice.events(event, event)
    assert first.status_code == 202, first.text
    assert [r["status"] for r in first.json()["results"]] == ["accepted", "duplicate"]
    again = await notice.events(event)
    assert again.json()["results"][0]["status"] == "duplicate"
    assert len((await notice.inbox(user))["items"]) == 1


async def test_a_key_used_for_another_recipient_is_a_conflict(notice: NoticeApi) -> None:
    fields = {"category": "general", "variables": {"title": "t", "body": "b"}, "dedup_key": "k-x"}
    assert (await notice.send(user_id=new_user().user_id, **fields)).status_code == 202
    other = await notice.send(user_id=new_user().user_id, **fields)
    assert other.status_code == 409
    assert other.json()["type"].endswith("/dedup-key-conflict")
