"""The in-app inbox: pages, unread count, mark read, mark all read; only your own notices."""

from __future__ import annotations

from tests.sv_notice.conftest import NoticeApi, new_user


async def _send(notice: NoticeApi, user_id: str, title: str) -> str:
    resp = await notice.send(
        user_id=user_id, category="general", variables={"title": title, "body": "body"}
    )
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


async def test_inbox_pages_counts_and_marks_read(notice: NoticeApi) -> None:
    alice, bob = new_user("alice"), new_user("bob")
    ids = [await _send(notice, alice.user_id, f"n{i}") for i in range(5)]
    await _send(notice, bob.user_id, "for bob")

    first = await notice.inbox(alice, limit=2)
    assert [n["title"] for n in first["items"]] == ["n4", "n3"]
    second = await notice.inbox(alice, limit=2, cursor=first["next_cursor"])
    third = await notice.inbox(alice, limit=2, cursor=second["next_cursor"])
    assert [n["title"] for n in second["items"] + third["items"]] == ["n2", "n1", "n0"]
    assert third["next_cursor"] is None

    count = await notice.call("GET", "/api/v1/notices/unread-count", alice)
    assert count.json() == {"unread": 5}
    read = await notice.call("POST", f"/api/v1/notices/{ids[0]}/read", alice)
    assert read.status_code == 200
    assert read.json()["read"] is True
    assert (await notice.call("POST", f"/api/v1/notices/{ids[0]}/read", alice)).status_code == 200
    count = await notice.call("GET", "/api/v1/notices/unread-count", alice)
    assert count.json() == {"unread": 4}
    unread = await notice.inbox(alice, unread_only="true")
    assert ids[0] not in [n["id"] for n in unread["items"]]

    # Bob cannot see or mark Alice's notice.
    assert (await notice.call("GET", f"/api/v1/notices/{ids[1]}", bob)).status_code == 404
    assert (await notice.call("POST", f"/api/v1/notices/{ids[1]}/read", bob)).status_code == 404

    marked = await notice.call("POST", "/api/v1/notices/read-all", alice)
    assert marked.json() == {"marked": 4}
    count = await notice.call("GET", "/api/v1/notices/unread-count", alice)
    assert count.json() == {"unread": 0}
    bob_count = await notice.call("GET", "/api/v1/notices/unread-count", bob)
    assert bob_count.json() == {"unread": 1}


async def test_bad_input_and_missing_identity_are_problems_not_500s(notice: NoticeApi) -> None:
    user = new_user()
    cases = [
        await notice.call("GET", "/api/v1/notices", user, params={"cursor": "garbage!"}),
        await notice.call("GET", "/api/v1/notices", user, params={"limit": 0}),
        await notice.call("GET", "/api/v1/notices", user, params={"limit": "lots"}),
        await notice.call("GET", f"/api/v1/notices/{'x' * 40}", user),
        await notice.call("POST", "/api/v1/notices/no-such-id/read", user),
    ]
    assert [r.status_code for r in cases] == [400, 422, 422, 422, 404]
    unauthenticated = await notice.http.get("/api/v1/notices")
    assert unauthenticated.status_code == 401
    forged = await notice.http.get(
        "/api/v1/notices", headers={"x-edge-identity": user.encode(), "x-edge-service": "x"}
    )
    assert forged.status_code == 401
    send_garbage = await notice.http.post(
        "/api/v1/notices/admin/send", content=b"{not json", headers={}
    )
    assert send_garbage.status_code in (401, 422)
    for resp in [*cases, unauthenticated, forged]:
        assert resp.headers["content-type"] == "application/problem+json"


async def test_unsigned_event_intake_is_refused(notice: NoticeApi) -> None:
    resp = await notice.http.post("/internal/events", json={"events": []})
    assert resp.status_code == 401
    bad = await notice.events()  # signed, but an empty batch
    assert bad.status_code == 422
