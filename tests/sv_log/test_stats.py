"""Traffic statistics in sv-log: exactly-once intake of gateway minute rows, roll-ups,
series, tenant confinement, bad input as problem+json, and retention per step."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from edgelib.identity import Identity
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from sv_log.config import Settings
from tests.helpers import grant
from tests.sv_log.conftest import GATEWAY, open_sv_log, settings_for

GATEWAY_STATS = ServiceSigner("gateway-api", DEV_SERVICE_SECRET).to("sv-log")
SV_USER = ServiceSigner("sv-user", DEV_SERVICE_SECRET).to("sv-log")
PLATFORM = Identity("u-ops", "ops", "east", "s-1", "web")
ACME_ADMIN = Identity("u-acme", "alice", "east", "s-2", "web", tenant="acme")
NOBODY = Identity("u-none", "bob", "east", "s-3", "web")
HOUR = 1_800_000_000 // 3600 * 3600  # a fixed hour, far from any retention cutoff's edge
BUCKETS = 14


def row(minute: int, *, tenant: str = "acme", app: str = "", route: str = "users",
        status_class: str = "2xx", requests: int = 1, latency_us: int = 1500,
        buckets: list[int] | None = None) -> dict[str, Any]:  # fmt: skip
    if buckets is None:
        buckets = [0] * BUCKETS
        buckets[1] = requests  # 1.5 ms: the (1 ms, 2.5 ms] bucket
    return {
        "minute": minute, "tenant": tenant, "app": app, "route": route,
        "status_class": status_class, "requests": requests, "latency_us": latency_us,
        "buckets": buckets,
    }  # fmt: skip


async def send(
    client: httpx.AsyncClient, rows: list[dict[str, Any]], key: str | None = "k-1",
    signer: Any = GATEWAY_STATS, body: bytes | None = None,
) -> httpx.Response:  # fmt: skip
    body = orjson.dumps({"rows": rows}) if body is None else body
    headers = {"content-type": "application/json", **signer.sign("POST", "/internal/stats", body)}
    if key is not None:
        headers["idempotency-key"] = key
    return await client.post("/internal/stats", content=body, headers=headers)


async def stats(
    client: httpx.AsyncClient, who: Identity = PLATFORM, path: str = "/api/v1/stats", **params: Any
) -> httpx.Response:
    url = httpx.URL(path, params=params)
    target = url.raw_path.decode()
    return await client.get(
        target, headers=GATEWAY.sign("GET", target, None, identity=who.encode())
    )


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def stats_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return settings_for(str(request.param), tmp_path, {})


@pytest.fixture
async def sv_log(stats_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with open_sv_log(stats_settings) as (app, client):
        grant(app, PLATFORM.user_id, "stats:read")
        grant(app, ACME_ADMIN.user_id, "stats:read@acme")
        yield client


async def test_rows_add_up_per_minute_hour_and_day_and_a_resent_batch_counts_once(
    sv_log: httpx.AsyncClient,
) -> None:
    batch = [
        row(HOUR, requests=3),
        row(HOUR, requests=2),  # the same key twice in one batch: added together
        row(
            HOUR + 60,
            status_class="4xx",
            requests=4,
            latency_us=800_000,
            buckets=[0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0],
        ),
        row(HOUR + 3540, status_class="5xx", requests=1),
        row(HOUR + 3600, requests=7),  # the next hour
    ]
    first = await send(sv_log, batch, key="batch-1")
    assert first.status_code == 202, first.text
    assert first.json() == {"rows": 5, "duplicate": False}
    again = await send(sv_log, batch, key="batch-1")
    assert again.status_code == 202
    assert again.json() == {"rows": 0, "duplicate": True}

    minutes = await stats(
        sv_log, tenant="acme", step="minute", **{"from": iso(HOUR), "to": iso(HOUR + 7200)}
    )
    assert minutes.status_code == 200, minutes.text
    doc = minutes.json()
    (series,) = doc["series"]
    assert len(series["points"]) == 120
    assert series["totals"]["requests"] == 17
    assert series["totals"]["errors_4xx"] == 4
    assert series["totals"]["errors_5xx"] == 1
    assert series["points"][0]["requests"] == 5
    assert series["points"][1]["status_classes"]["4xx"] == 4
    assert series["points"][1]["latency_ms_avg"] == 200.0
    hours = (
        await stats(
            sv_log, tenant="acme", step="hour", **{"from": iso(HOUR), "to": iso(HOUR + 7200)}
        )
    ).json()
    hour_points = hours["series"][0]["points"]
    assert [p["requests"] for p in hour_points] == [10, 7]
    # The minutes of each hour add up to that hour, class by class and bucket by bucket.
    for h, point in enumerate(hour_points):
        minute_points = series["points"][h * 60 : (h + 1) * 60]
        assert sum(p["requests"] for p in minute_points) == point["requests"]
        for cls in ("2xx", "4xx", "5xx"):
            assert (
                sum(p["status_classes"][cls] for p in minute_points) == point["status_classes"][cls]
            )
        assert [
            sum(col) for col in zip(*(p["latency_histogram"] for p in minute_points), strict=True)
        ] == point["latency_histogram"]
    day = (await stats(sv_log, step="day", **{"from": iso(HOUR), "to": iso(HOUR + 1)})).json()
    assert day["series"][0]["totals"]["requests"] == 17


async def test_series_filter_and_group_by_app_route_and_status_class(
    sv_log: httpx.AsyncClient,
) -> None:
    await send(sv_log, [
        row(HOUR, app="app_a", route="users", requests=3),
        row(HOUR, app="app_b", route="users", requests=5, status_class="4xx"),
        row(HOUR, app="app_b", route="wallets", requests=2),
        row(HOUR, tenant="globex", app="app_g", requests=11),
    ])  # fmt: skip
    window = {"from": iso(HOUR), "to": iso(HOUR + 60), "step": "minute"}
    by_app = (await stats(sv_log, tenant="acme", group_by="app", **window)).json()
    assert {s["group"]["app"]: s["totals"]["requests"] for s in by_app["series"]} == {
        "app_a": 3, "app_b": 7,
    }  # fmt: skip
    one = (
        await stats(
            sv_log, tenant="acme", app="app_b", route="users", group_by="status_class", **window
        )
    ).json()
    assert {s["group"]["status_class"]: s["totals"]["requests"] for s in one["series"]} == {
        "4xx": 5
    }
    everything = (await stats(sv_log, group_by="tenant", **window)).json()
    assert {s["group"]["tenant"]: s["totals"]["requests"] for s in everything["series"]} == {
        "acme": 10, "globex": 11,
    }  # fmt: skip


async def test_a_tenant_admin_sees_its_own_tenant_only(sv_log: httpx.AsyncClient) -> None:
    await send(sv_log, [row(HOUR, requests=2), row(HOUR, tenant="globex", requests=9)])
    window = {"from": iso(HOUR), "to": iso(HOUR + 60), "step": "minute"}
    own = await stats(sv_log, ACME_ADMIN, **window)
    assert own.status_code == 200, own.text
    assert own.json()["tenant"] == "acme"
    assert own.json()["series"][0]["totals"]["requests"] == 2
    other = await stats(sv_log, ACME_ADMIN, tenant="globex", **window)
    assert other.status_code == 403
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"].endswith("outside-tenant")
    assert (await stats(sv_log, NOBODY, **window)).status_code == 403
    today = await stats(sv_log, ACME_ADMIN, path="/api/v1/stats/today", tenant="globex")
    assert today.status_code == 403


@pytest.mark.parametrize(
    "params",
    [
        {"step": "week"},
        {"from": "yesterday"},
        {"from": iso(HOUR + 60), "to": iso(HOUR)},
        {"step": "minute", "from": iso(HOUR), "to": iso(HOUR + 86400 * 30)},
        {"tenant": "a b"},
        {"group_by": "user"},
        {"surprise": "1"},
    ],
)
async def test_bad_queries_are_4xx_problems(
    sv_log: httpx.AsyncClient, params: dict[str, str]
) -> None:
    resp = await stats(sv_log, **params)
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("rows", "status"),
    [
        ([row(HOUR + 1)], 422),  # not the start of a minute
        ([row(HOUR, requests=0)], 422),
        ([row(HOUR, buckets=[5] + [0] * 13)], 422),  # more latencies than requests
        ([row(HOUR, status_class="6xx")], 422),
        ([{**row(HOUR), "extra": 1}], 422),
    ],
)
async def test_bad_batches_are_refused_whole(
    sv_log: httpx.AsyncClient, rows: list[dict[str, Any]], status: int
) -> None:
    resp = await send(sv_log, [row(HOUR, requests=100), *rows], key="bad")
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    doc = (await stats(sv_log, step="minute", **{"from": iso(HOUR), "to": iso(HOUR + 60)})).json()
    assert doc["series"][0]["totals"]["requests"] == 0


async def test_intake_wants_the_gateway_a_key_and_json(sv_log: httpx.AsyncClient) -> None:
    assert (await send(sv_log, [row(HOUR)], signer=SV_USER)).status_code == 403
    assert (await send(sv_log, [row(HOUR)], key=None)).status_code == 400
    assert (await send(sv_log, [], body=b"{nope")).status_code == 400
    assert (await send(sv_log, [], body=b'{"rows": 1}')).status_code == 400


async def test_today_against_yesterday(sv_log: httpx.AsyncClient) -> None:
    now = int(time.time())
    midnight = now // 86400 * 86400
    await send(sv_log, [
        row(midnight - 86400, requests=4),  # yesterday, first hour
        row(midnight - 60, requests=6),  # yesterday, last minute
        row(now // 60 * 60, requests=5),  # now
    ])  # fmt: skip
    doc = (await stats(sv_log, path="/api/v1/stats/today", tenant="acme")).json()
    assert doc["today"]["totals"]["requests"] == 5
    assert len(doc["today"]["hours"]) == 24
    assert doc["yesterday"]["totals"]["requests"] == 10
    # Up to the same time of day: the last minute of yesterday only counts after 23:00.
    expected = 4 if now - midnight < 23 * 3600 else 10
    assert doc["yesterday_same_time"]["requests"] == expected
    assert doc["change_ratio"] == round(5 / expected, 4)


async def test_retention_keeps_each_step_for_its_own_time(stats_settings: Settings) -> None:
    async with open_sv_log(stats_settings) as (app, client):
        grant(app, PLATFORM.user_id, "stats:read")
        now = int(time.time()) // 86400 * 86400 + 43200
        three_days = now - 3 * 86400
        await send(client, [row(three_days // 60 * 60, requests=8)])
        service = app.state.stats_service
        await service.purge(now)

        async def total(step: str) -> int:
            resp = await stats(
                client, step=step, **{"from": iso(three_days - 3600), "to": iso(three_days + 3600)}
            )
            return int(resp.json()["series"][0]["totals"]["requests"])

        assert await total("minute") == 0  # older than 48 h
        assert await total("hour") == 8
        assert await total("day") == 8
        await service.purge(now + 100 * 86400)
        assert await total("hour") == 0
        assert await total("day") == 8


async def test_on_mongodb_statistics_answer_503_and_the_gateway_keeps_its_rows(
    tmp_path: Path, nx_url: str
) -> None:
    async with open_sv_log(settings_for("mongo", tmp_path, {}, nx_url)) as (app, client):
        grant(app, PLATFORM.user_id, "stats:read")
        refused = await send(client, [row(HOUR)])
        assert refused.status_code == 503  # a 5xx: the gateway sends it again later
        assert refused.headers["content-type"] == "application/problem+json"
        assert (await stats(client)).status_code == 503
