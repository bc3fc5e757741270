"""Query: filters, newest first, cursor pages without gaps or repeats, and its refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.sv_log.conftest import TRACE, query, reader, record, ship

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


@pytest.fixture
async def seeded(sv_log: httpx.AsyncClient) -> httpx.AsyncClient:
    batch = [
        record("user registered alice", ts=at(0), service="sv-user", region="east"),
        record("payment failed for bob", ts=at(1), service="sv-money", level="error"),
        record(
            "GET /api/v1/wallet 200",
            ts=at(2),
            service="gateway-api",
            region=None,
            trace_id=TRACE,
            request_id="req-7",
        ),
        record("user profile read", ts=at(3), service="sv-user", region="west", trace_id=TRACE),
        record("disk almost full", ts=at(4), service="sv-money", level="warning", region="west"),
    ]
    assert (await ship(sv_log, batch)).status_code == 202
    return sv_log


async def messages(client: httpx.AsyncClient, **params: Any) -> list[str]:
    params.setdefault("since", T0.isoformat())
    params.setdefault("until", (T0 + timedelta(hours=1)).isoformat())
    return [i["message"] for i in (await query(client, **params))["items"]]


async def test_records_carry_tenant_and_app_and_are_found_by_them(
    sv_log: httpx.AsyncClient,
) -> None:
    gateway = {"ts": at(5), "service": "gateway-api", "region": None}
    batch = [
        record("GET /a 200", **gateway, tenant="acme", app="app_1"),
        record("GET /a 403", **gateway, tenant="acme"),
        record("GET /b 200", **gateway, tenant="globex", app="app_2"),
        record("GET /c 200", **gateway),
    ]
    assert (await ship(sv_log, batch)).status_code == 202
    acme = (await query(sv_log, tenant="acme", order="asc"))["items"]
    assert [(i["message"], i["tenant"], i["app"]) for i in acme] == [
        ("GET /a 200", "acme", "app_1"),
        ("GET /a 403", "acme", None),
    ]
    assert await messages(sv_log, app="app_2") == ["GET /b 200"]
    assert sorted(await messages(sv_log, tenant=["acme", "globex"])) == [
        "GET /a 200",
        "GET /a 403",
        "GET /b 200",
    ]
    assert await messages(sv_log, tenant="nobody") == []
    bad = record("x", tenant="has space")
    assert (await ship(sv_log, [bad])).status_code == 422


async def test_newest_first_by_default_and_oldest_first_on_request(
    seeded: httpx.AsyncClient,
) -> None:
    newest = await messages(seeded)
    assert newest[0] == "disk almost full"
    assert newest[-1] == "user registered alice"
    assert await messages(seeded, order="asc") == newest[::-1]


async def test_filters_by_service_region_level_trace_request_and_time(
    seeded: httpx.AsyncClient,
) -> None:
    assert await messages(seeded, service="sv-user") == [
        "user profile read",
        "user registered alice",
    ]
    both = await messages(seeded, service=["sv-user", "gateway-api"], region="west")
    assert both == ["user profile read"]
    assert await messages(seeded, level=["error", "warning"]) == [
        "disk almost full",
        "payment failed for bob",
    ]
    assert await messages(seeded, trace_id=TRACE.upper(), order="asc") == [
        "GET /api/v1/wallet 200",
        "user profile read",
    ]
    assert await messages(seeded, request_id="req-7") == ["GET /api/v1/wallet 200"]
    assert await messages(seeded, since=at(1), until=at(3)) == [
        "GET /api/v1/wallet 200",
        "payment failed for bob",
    ]


async def test_text_search_matches_every_word_of_the_query(seeded: httpx.AsyncClient) -> None:
    assert await messages(seeded, q="user") == ["user profile read", "user registered alice"]
    assert await messages(seeded, q="PAYMENT failed") == ["payment failed for bob"]
    assert await messages(seeded, q="payment alice") == []
    # Odd input is searched for, never an error.
    assert await messages(seeded, q="50% off_ 'or 1=1 -- \\ & | ! :*") == []


async def test_cursor_pages_cover_everything_once_in_both_orders(
    sv_log: httpx.AsyncClient,
) -> None:
    # Equal timestamps in groups of three: the id breaks the tie.
    batch = [record(f"m{i:02d}", ts=at(i // 3)) for i in range(25)]
    assert (await ship(sv_log, batch)).status_code == 202
    for order in ("desc", "asc"):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 4, "order": order, "service": "sv-user"}
            if cursor:
                params["cursor"] = cursor
            page = await query(sv_log, **params)
            seen += [i["message"] for i in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 7
        expected = [f"m{i:02d}" for i in range(25)]
        assert seen == (expected if order == "asc" else expected[::-1])


async def _get(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    target = httpx.URL("/api/v1/logs/records", params=params).raw_path.decode()
    return await client.get(target, headers=reader(target))


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"cursor": "not-a-cursor"}, 400),
        ({"cursor": "eyJ0IjoxfQ"}, 400),
        ({"since": at(5), "until": at(1)}, 400),
        ({"since": "last tuesday"}, 422),
        ({"level": "loud"}, 422),
        ({"trace_id": "xyz"}, 422),
        ({"limit": 0}, 422),
        ({"limit": 5000}, 422),
        ({"order": "sideways"}, 422),
        ({"colour": "red"}, 422),
        ({"q": "nul\x00byte"}, 422),
        ({"service": "sv\x00user"}, 422),
        ({"since": "9999-12-31T23:59:59-05:00"}, 422),
    ],
)
async def test_bad_query_is_a_4xx_problem(
    sv_log: httpx.AsyncClient, params: dict[str, Any], status: int
) -> None:
    resp = await _get(sv_log, **params)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"


async def test_cursor_of_one_order_is_refused_for_the_other(sv_log: httpx.AsyncClient) -> None:
    await ship(sv_log, [record("a"), record("b")])
    page = await query(sv_log, limit=1, service="sv-user")
    resp = await _get(sv_log, limit=1, order="asc", cursor=page["next_cursor"])
    assert resp.status_code == 400


@pytest.mark.parametrize("store", ["sqlite"])
async def test_public_routes_need_the_identity_the_gateway_signs(
    sv_log: httpx.AsyncClient,
) -> None:
    for path in ("/api/v1/logs/records", "/api/v1/logs/tail", "/api/v1/logs/retention"):
        resp = await sv_log.get(path)
        assert resp.status_code == 401, path
        assert resp.headers["content-type"] == "application/problem+json"
    resp = await sv_log.get("/api/v1/logs/retention", headers=reader("/api/v1/logs/retention"))
    assert resp.json() == {"default_days": 14, "by_service": {}, "interval_seconds": 3600.0}
