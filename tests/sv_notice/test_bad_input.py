"""Bad input is a 4xx problem on both storage flavours, never a 500 from the database."""

from __future__ import annotations

import orjson

from tests.sv_notice.conftest import ADMIN, NoticeApi, gateway_headers, new_user

NUL = "a\x00b"


async def test_nul_characters_and_non_finite_numbers_are_refused(notice: NoticeApi) -> None:
    user = new_user()
    admin_send = "/api/v1/notices/admin/send"
    general = {"user_id": user.user_id, "category": "general"}
    cases = [
        ("POST", admin_send, ADMIN, general | {"variables": {"title": NUL, "body": "b"}}),
        (
            "POST",
            admin_send,
            ADMIN,
            general | {"variables": {"title": "t", "body": "b"}} | {"dedup_key": NUL},
        ),
        ("POST", admin_send, ADMIN, {"username": NUL, "category": "general"}),
        ("PUT", "/api/v1/notices/preferences/contact", user, {"email": f"{NUL}@example.test"}),
        ("PUT", "/api/v1/notices/preferences/webhook", user, {"url": f"http://x.test/{NUL}"}),
        ("PUT", "/api/v1/notices/admin/templates/general/en", ADMIN, {"title": NUL, "body": "b"}),
        (
            "PUT",
            "/api/v1/notices/admin/categories/x.y",
            ADMIN,
            {"channels": ["in_app"], "description": NUL},
        ),
    ]
    for method, path, who, body in cases:
        resp = await notice.call(method, path, who, json=body)
        assert resp.status_code == 422, (path, body, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
    for path in ("/api/v1/notices/a%00b", "/api/v1/notices/a%00b/read"):
        resp = await notice.call("POST" if path.endswith("read") else "GET", path, user)
        assert resp.status_code == 422, path
    event = {"type": "general", "user_id": user.user_id, "data": {"title": "t", "body": "b"}}
    for bad in ({"id": NUL}, {"id": "e-1", "source": NUL}, {"id": "e-2", "region": NUL}):
        resp = await notice.events(event | bad)
        assert resp.status_code == 422, bad

    await notice.call(
        "PUT",
        "/api/v1/notices/admin/categories/stats.daily",
        ADMIN,
        json={"channels": ["in_app"]},
    )
    await notice.call(
        "PUT",
        "/api/v1/notices/admin/templates/stats.daily/en",
        ADMIN,
        json={"title": "t", "body": "{{ x }}", "variables": {"x": {"type": "number"}}},
    )
    body = b'{"user_id": "%s", "category": "stats.daily", "variables": {"x": NaN}}' % (
        user.user_id.encode()
    )
    headers = gateway_headers("POST", admin_send, ADMIN) | {"content-type": "application/json"}
    resp = await notice.http.post(admin_send, content=body, headers=headers)
    assert resp.status_code == 422, resp.text
    ok = await notice.send(user_id=user.user_id, category="stats.daily", variables={"x": 1.5})
    assert ok.status_code == 202
    assert orjson.loads(ok.content)["body"] == "1.5"
