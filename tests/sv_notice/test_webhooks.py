"""Signed webhooks: retried with backoff until accepted, dead-lettered when they never are."""

from __future__ import annotations

import orjson
import pytest

from edgelib.identity import Identity
from sv_notice.delivery import webhook
from sv_notice.exceptions import InvalidWebhookUrl
from tests.sv_notice.conftest import (
    ADMIN,
    NoticeApi,
    WebhookReceiver,
    new_user,
    webhook_receiver,
)


async def _subscribe(notice: NoticeApi, url: str) -> tuple[str, Identity]:
    user = new_user()
    resp = await notice.call("PUT", "/api/v1/notices/preferences/webhook", user, json={"url": url})
    assert resp.status_code == 200, resp.text
    secret = resp.json()["secret"]
    assert secret.startswith("whsec_")
    return secret, user


async def test_receiver_failing_three_times_gets_the_notice_exactly_once_after_retries(
    notice: NoticeApi,
) -> None:
    async with webhook_receiver(WebhookReceiver(statuses=[500, 503, 502])) as receiver:
        secret, user = await _subscribe(notice, receiver.url)
        sent = await notice.send(
            user_id=user.user_id,
            category="general",
            variables={"title": "Maintenance", "body": "Tonight 22:00"},
            channels=["in_app", "webhook"],
        )
        assert sent.status_code == 202, sent.text
        notice_id = sent.json()["id"]
        delivery = await notice.wait_delivered(notice_id, "webhook")

    assert delivery["attempts"] == 4
    assert delivery["reason"] == "webhook answered HTTP 502"  # the last failure is kept
    assert [status for _, _, status in receiver.calls] == [500, 503, 502, 200]
    assert len(receiver.accepted) == 1
    headers, body = receiver.accepted[0]
    # Every attempt is the same message: one id a receiver can de-duplicate on.
    assert {h["webhook-id"] for h, _, _ in receiver.calls} == {delivery["id"]}
    assert webhook.verify(secret, headers, body)
    assert not webhook.verify(secret, headers, body + b" ")
    assert not webhook.verify(webhook.new_secret(), headers, body)
    doc = orjson.loads(body)
    assert doc["type"] == "notice"
    assert doc["notice"]["id"] == notice_id
    assert doc["notice"]["title"] == "Maintenance"


async def test_receiver_that_always_fails_ends_in_dead_letters_with_the_reason_and_replays(
    notice: NoticeApi,
) -> None:
    async with webhook_receiver(WebhookReceiver(always=500)) as receiver:
        _secret, user = await _subscribe(notice, receiver.url)
        sent = await notice.send(
            user_id=user.user_id,
            category="general",
            variables={"title": "t", "body": "b"},
            channels=["webhook"],
        )
        notice_id = sent.json()["id"]
        failed = await notice.wait_delivered(notice_id, "webhook", status="failed")
        assert failed["attempts"] == 5  # max_attempts in the test settings
        assert failed["reason"] == "webhook answered HTTP 500 (gave up after 5 attempts)"
        assert len(receiver.calls) == 5

        dead = await notice.call("GET", "/api/v1/notices/admin/dead-letters", ADMIN)
        assert dead.status_code == 200
        [item] = [d for d in dead.json()["items"] if d["notice_id"] == notice_id]
        assert item["id"] == failed["id"]
        assert item["channel"] == "webhook"
        assert item["reason"] == failed["reason"]
        assert item["failed_at"] is not None

        # The receiver recovers; an admin replays the dead letter.
        receiver.always = None
        replay = await notice.call(
            "POST", f"/api/v1/notices/admin/dead-letters/{failed['id']}/replay", ADMIN
        )
        assert replay.status_code == 202, replay.text
        assert replay.json()["status"] == "queued"
        sent_now = await notice.wait_delivered(notice_id, "webhook")
        assert sent_now["attempts"] == 1
        assert len(receiver.accepted) == 1

    again = await notice.call(
        "POST", f"/api/v1/notices/admin/dead-letters/{failed['id']}/replay", ADMIN
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    dead = await notice.call("GET", "/api/v1/notices/admin/dead-letters", ADMIN)
    assert all(d["notice_id"] != notice_id for d in dead.json()["items"])


async def test_gone_receiver_is_dead_lettered_at_once(notice: NoticeApi) -> None:
    async with webhook_receiver(WebhookReceiver(always=410)) as receiver:
        _secret, user = await _subscribe(notice, receiver.url)
        sent = await notice.send(
            user_id=user.user_id,
            category="general",
            variables={"title": "t", "body": "b"},
        )
        failed = await notice.wait_delivered(sent.json()["id"], "webhook", status="failed")
    assert failed["attempts"] == 1
    assert failed["reason"] == "webhook answered HTTP 410"


async def test_webhook_urls_are_checked_and_secrets_are_shown_once(notice: NoticeApi) -> None:
    user = new_user()
    for bad in ["ftp://example.com/x", "http://user:pw@example.com/x", "not a url"]:
        resp = await notice.call(
            "PUT", "/api/v1/notices/preferences/webhook", user, json={"url": bad}
        )
        assert resp.status_code == 422, bad
        assert resp.headers["content-type"] == "application/problem+json"
    ok = await notice.call(
        "PUT",
        "/api/v1/notices/preferences/webhook",
        user,
        json={"url": "http://127.0.0.1:29999/hook"},
    )
    assert ok.status_code == 200
    prefs = (await notice.call("GET", "/api/v1/notices/preferences", user)).json()
    assert prefs["webhook"] == {"url": "http://127.0.0.1:29999/hook", "secret": None}


async def test_private_webhook_targets_are_refused_outside_the_local_profile() -> None:
    with pytest.raises(InvalidWebhookUrl, match="non-public"):
        await webhook.check_target("http://127.0.0.1:8080/x", allow_private=False)
    await webhook.check_target("http://127.0.0.1:8080/x", allow_private=True)
