"""Preferences suppress non-critical categories per channel, and never a critical one."""

from __future__ import annotations

import asyncio

from tests.sv_notice.conftest import (
    TRANSFER_VARS,
    NoticeApi,
    WebhookReceiver,
    new_user,
    webhook_receiver,
)

SIGN_IN_VARS = {"client_type": "app", "signed_in_at": "2026-11-21T08:00:00Z", "ip": "203.0.113.9"}


def _by_channel(doc: dict) -> dict[str, dict]:
    return {d["channel"]: d for d in doc["deliveries"]}


async def test_preferences_suppress_a_non_critical_category_and_never_a_critical_one(
    notice: NoticeApi,
) -> None:
    user = new_user()
    async with webhook_receiver(WebhookReceiver()) as receiver:
        hook = await notice.call(
            "PUT", "/api/v1/notices/preferences/webhook", user, json={"url": receiver.url}
        )
        assert hook.status_code == 200
        # Off for everything on the webhook, and transfers off in the inbox too.
        everything = await notice.call(
            "PUT",
            "/api/v1/notices/preferences/categories/*",
            user,
            json={"channels": {"webhook": False, "realtime": False}},
        )
        assert everything.status_code == 200, everything.text
        transfers = await notice.call(
            "PUT",
            "/api/v1/notices/preferences/categories/wallet.transfer_received",
            user,
            json={"channels": {"in_app": False}},
        )
        assert transfers.status_code == 200, transfers.text
        view = {c["category"]: c for c in transfers.json()["categories"]}
        assert view["wallet.transfer_received"]["channels"] == {
            "in_app": False,
            "realtime": False,
            "email": True,
            "webhook": False,
        }
        assert view["security.new_sign_in"]["channels"] == dict.fromkeys(
            ["in_app", "realtime", "email", "webhook"], True
        )

        transfer = await notice.send(
            user_id=user.user_id, category="wallet.transfer_received", variables=TRANSFER_VARS
        )
        sign_in = await notice.send(
            user_id=user.user_id, category="security.new_sign_in", variables=SIGN_IN_VARS
        )
        assert transfer.status_code == sign_in.status_code == 202

        muted = _by_channel(transfer.json())
        for channel in ("in_app", "realtime", "webhook"):
            assert muted[channel]["status"] == "suppressed", channel
            assert muted[channel]["reason"] == "turned off in the user's preferences"
        assert transfer.json()["in_inbox"] is False

        critical = _by_channel(sign_in.json())
        assert critical["in_app"]["status"] == "sent"
        assert critical["realtime"]["status"] == "queued"
        assert critical["webhook"]["status"] == "queued"
        await notice.wait_delivered(sign_in.json()["id"], "webhook")
        await notice.wait_delivered(sign_in.json()["id"], "realtime")
        await asyncio.sleep(0.2)

    # Only the critical notice reached the webhook and the inbox.
    delivered = [body for _, body in receiver.accepted]
    assert len(delivered) == 1
    assert sign_in.json()["id"].encode() in delivered[0]
    inbox = await notice.inbox(user)
    assert [n["id"] for n in inbox["items"]] == [sign_in.json()["id"]]


async def test_critical_category_switches_are_refused_and_unknown_ones_are_4xx(
    notice: NoticeApi,
) -> None:
    user = new_user()
    critical = await notice.call(
        "PUT",
        "/api/v1/notices/preferences/categories/security.new_sign_in",
        user,
        json={"channels": {"email": False}},
    )
    assert critical.status_code == 422
    assert critical.json()["type"].endswith("/critical-category")
    unknown = await notice.call(
        "PUT",
        "/api/v1/notices/preferences/categories/nope.nothing",
        user,
        json={"channels": {"email": False}},
    )
    assert unknown.status_code == 404
    bad_channel = await notice.call(
        "PUT",
        "/api/v1/notices/preferences/categories/general",
        user,
        json={"channels": {"pigeon": False}},
    )
    assert bad_channel.status_code == 422
    bad_name = await notice.call(
        "PUT",
        "/api/v1/notices/preferences/categories/Bad Name",
        user,
        json={"channels": {"email": False}},
    )
    assert bad_name.status_code == 422
    for resp in (critical, unknown, bad_channel, bad_name):
        assert resp.headers["content-type"] == "application/problem+json"


async def test_switching_a_channel_back_on_restores_it(notice: NoticeApi) -> None:
    user = new_user()
    path = "/api/v1/notices/preferences/categories/general"
    await notice.call("PUT", path, user, json={"channels": {"in_app": False}})
    first = await notice.send(
        user_id=user.user_id, category="general", variables={"title": "a", "body": "b"}
    )
    await notice.call("PUT", path, user, json={"channels": {"in_app": True}})
    second = await notice.send(
        user_id=user.user_id, category="general", variables={"title": "c", "body": "d"}
    )
    assert first.json()["in_inbox"] is False
    assert second.json()["in_inbox"] is True
    assert [n["title"] for n in (await notice.inbox(user))["items"]] == ["c"]
