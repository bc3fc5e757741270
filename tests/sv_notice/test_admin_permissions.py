"""sv-notice checks notices:admin itself, on the gateway-signed identity."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sv_notice.conftest import ADMIN, NoticeApi, new_user


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/notices/admin/send", {"category": "general", "username": "x"}),
        ("GET", "/api/v1/notices/admin/dead-letters", None),
        ("GET", "/api/v1/notices/admin/deliveries", None),
        ("GET", "/api/v1/notices/admin/templates", None),
        ("PUT", "/api/v1/notices/admin/categories/promo", {"description": "d"}),
    ],
)
async def test_a_user_without_notices_admin_is_403_even_when_routed_here(
    notice: NoticeApi, method: str, path: str, body: Any
) -> None:
    resp = await notice.call(method, path, new_user("mallory"), json=body)
    assert resp.status_code == 403, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert "notices:admin" in resp.json()["detail"]
    served = await notice.call("GET", "/api/v1/notices/admin/templates", ADMIN)
    assert served.status_code == 200
