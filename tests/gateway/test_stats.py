"""The gateway's traffic statistics: counted per (minute, tenant, app, route, status
class) in memory, shipped in keyed batches that sv-log counts once however often they
are resent, kept on a bounded outbox, and spooled across a restart."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from edgelib.identity import Identity
from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from gateway_api.stats import BUCKETS, OVERFLOW, TrafficStats, encode_rows
from gateway_api.statship import Batch, SendFailed, SendRefused, StatsShipper
from sv_log.config import Settings as LogSettings
from tests.helpers import grant
from tests.sv_log.conftest import open_sv_log

SIGNER = ServiceSigner("gateway-api", DEV_SERVICE_SECRET).to("sv-log")
OPS = Identity("u-ops", "ops", "east", "s-1", "web")


def test_requests_are_counted_per_minute_tenant_app_route_and_class() -> None:
    stats = TrafficStats()
    stats.request("acme", "app_1", "GET /x", 200, 0.0015, time.perf_counter())
    stats.request("acme", "app_1", "GET /x", 204, 0.2, time.perf_counter())
    stats.request("acme", "app_1", "GET /x", 404, 0.0001, time.perf_counter())
    stats.request("acme", "", "GET /x", 503, 20.0, time.perf_counter())
    stats.request(
        "default", "", "GET /ws", 101, 3600.0, time.perf_counter()
    )  # a tunnel: no latency
    rows = {
        (r["tenant"], r["app"], r["route"], r["status_class"]): r for r in encode_rows(stats.take())
    }
    assert stats.rows == {}
    ok = rows[("acme", "app_1", "GET /x", "2xx")]
    assert ok["requests"] == 2
    assert ok["latency_us"] == 1500 + 200_000
    assert ok["buckets"][1] == 1
    assert ok["buckets"][7] == 1
    assert sum(ok["buckets"]) == 2
    assert ok["minute"] % 60 == 0
    assert abs(ok["minute"] - time.time()) < 120
    assert rows[("acme", "app_1", "GET /x", "4xx")]["buckets"][0] == 1
    assert rows[("acme", "", "GET /x", "5xx")]["buckets"][BUCKETS - 1] == 1  # +Inf
    tunnel = rows[("default", "", "GET /ws", "1xx")]
    assert (tunnel["requests"], tunnel["latency_us"], sum(tunnel["buckets"])) == (1, 0, 0)


def test_each_request_counts_in_the_minute_it_ended() -> None:
    stats = TrafficStats()
    base = 1_800_000_000 // 60 * 60  # the start of a wall-clock minute
    stats.clock_offset = base - 1000.0  # monotonic 1000.0 is that minute's start
    for finished in (1000.0, 1059.5, 1060.0, 1060.1, 1185.0):
        stats.request("acme", "", "GET /x", 200, 0.01, finished)
    per_minute = {r["minute"]: r["requests"] for r in encode_rows(stats.take())}
    assert per_minute == {base: 2, base + 60: 2, base + 180: 1}


def test_keys_beyond_the_bound_are_counted_under_overflow_exactly() -> None:
    stats = TrafficStats(max_keys=3)
    for i in range(10):
        stats.request(f"t{i}", "", "GET /x", 200, 0.01, time.perf_counter())
    rows = encode_rows(stats.take())
    assert sum(r["requests"] for r in rows) == 10
    assert len(rows) == 4
    assert [r["requests"] for r in rows if r["tenant"] == OVERFLOW] == [7]
    assert stats.overflowed == 7


@pytest.fixture
async def sv_log(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with open_sv_log(LogSettings(var_dir=tmp_path)) as (app, client):
        grant(app, OPS.user_id, "stats:read")
        yield client


class LossySink:
    """Posts to the in-process sv-log; the first ``lose`` answers are lost on the way back
    (sv-log stored the batch, the gateway never heard)."""

    def __init__(self, client: httpx.AsyncClient, lose: int = 0) -> None:
        self.client = client
        self.lose = lose
        self.down = False
        self.keys: list[str] = []

    async def __call__(self, batch: Batch) -> None:
        if self.down:
            raise SendFailed("connection refused")
        self.keys.append(batch.key)
        body = orjson.dumps({"rows": batch.rows})
        headers = {
            "content-type": "application/json",
            "idempotency-key": batch.key,
            **SIGNER.sign("POST", "/internal/stats", body),
        }
        resp = await self.client.post("/internal/stats", content=body, headers=headers)
        if resp.status_code >= 400 and resp.status_code < 500:
            raise SendRefused(resp.text)
        assert resp.status_code == 202, resp.text
        if self.lose:
            self.lose -= 1
            raise SendFailed("timed out reading the answer")


async def total(client: httpx.AsyncClient) -> int:
    minute = int(time.time()) // 60 * 60
    url = httpx.URL(
        "/api/v1/stats",
        params={"step": "hour", "from": str(minute - 7200), "to": str(minute + 3600)},
    )
    target = url.raw_path.decode()
    resp = await client.get(target, headers=SIGNER.sign("GET", target, None, identity=OPS.encode()))
    assert resp.status_code == 200, resp.text
    return int(resp.json()["series"][0]["totals"]["requests"])


async def test_a_batch_whose_answer_was_lost_is_resent_with_its_key_and_counted_once(
    sv_log: httpx.AsyncClient,
) -> None:
    stats = TrafficStats()
    sink = LossySink(sv_log, lose=2)
    shipper = StatsShipper(stats, sink, batch_rows=2)
    for i in range(5):
        stats.request("acme", f"app_{i}", "GET /x", 200, 0.01, time.perf_counter())
    assert shipper.cut() == 5
    assert [b.key for b in shipper.outbox] == [f"{shipper.key_prefix}-{n}" for n in (1, 2, 3)]
    for _ in range(2):
        with pytest.raises(SendFailed):
            await shipper.drain()
    await shipper.drain()
    assert sink.keys == [sink.keys[0]] * 3 + [sink.keys[0][:-1] + "2", sink.keys[0][:-1] + "3"]
    assert shipper.outbox == type(shipper.outbox)()
    assert shipper.shipped_rows == 5
    assert await total(sv_log) == 5


async def test_unsent_batches_are_spooled_at_stop_and_sent_by_the_next_start(
    sv_log: httpx.AsyncClient, tmp_path: Path
) -> None:
    spool = tmp_path / "stats-0.spool.json"
    stats = TrafficStats()
    sink = LossySink(sv_log)
    sink.down = True
    first = StatsShipper(stats, sink, spool=spool, interval=60)
    first.start()
    for _ in range(7):
        stats.request("acme", "", "GET /x", 500, 0.01, time.perf_counter())
    await first.stop(flush_timeout=0.2)
    assert spool.exists()
    assert await total(sv_log) == 0
    sink.down = False
    second = StatsShipper(TrafficStats(), sink, spool=spool, interval=0.05)
    second.start()
    deadline = time.monotonic() + 5
    while second.pending_rows and time.monotonic() < deadline:
        await __import__("asyncio").sleep(0.05)
    await second.stop()
    assert not spool.exists()
    assert await total(sv_log) == 7


def test_the_outbox_is_bounded_and_drops_the_oldest_batch_counted() -> None:
    stats = TrafficStats()

    async def never(batch: Batch) -> None:
        raise SendFailed("down")

    shipper = StatsShipper(stats, never, max_pending_rows=5)
    for window in range(4):
        for i in range(3):
            stats.request("acme", f"app_{window}_{i}", "GET /x", 200, 0.01, time.perf_counter())
        shipper.cut()
    assert shipper.pending_rows <= 5
    assert shipper.dropped_rows == 12 - shipper.pending_rows
    assert shipper.traffic[("acme", "app_3_0")] == [1, 0, 0]


def test_names_sv_log_would_refuse_are_sent_under_invalid_not_lost() -> None:
    stats = TrafficStats()

    async def unused(batch: Batch) -> None:
        raise AssertionError("not sent in this test")

    shipper = StatsShipper(stats, unused)
    stats.request("bad tenant", "", "GET /x", 200, 0.01, time.perf_counter())
    stats.request("acme", "app/1", "GET /x", 200, 0.01, time.perf_counter())
    stats.request("acme", "", "GET /é\n", 200, 0.01, time.perf_counter())
    shipper.cut()
    rows = [(r["tenant"], r["app"], r["route"]) for b in shipper.outbox for r in b.rows]
    assert sorted(rows) == [
        ("_invalid", "", "GET /x"),
        ("_invalid", "", "GET /x"),
        ("acme", "", "GET /??"),
    ]


async def test_a_batch_refused_for_good_is_dropped_not_retried_forever(
    sv_log: httpx.AsyncClient,
) -> None:
    stats = TrafficStats()
    shipper = StatsShipper(stats, LossySink(sv_log))
    shipper.outbox.append(Batch("bad-1", [{"minute": 1}]))
    shipper.pending_rows = 1
    stats.request("acme", "", "GET /x", 200, 0.01, time.perf_counter())
    shipper.cut()
    await shipper.drain()
    assert shipper.dropped_rows == 1
    assert await total(sv_log) == 1


async def test_the_proxy_counts_every_answer_under_its_route_and_class(tmp_path: Path) -> None:
    from tests.gateway.conftest import start_gateway

    async for gw in start_gateway(tmp_path, {"a": 1}):
        assert gw.gateway.stats is not None
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
            for _ in range(7):
                assert (await client.get("/api/v1/echo/x")).status_code == 200
            for _ in range(3):
                assert (await client.get("/nowhere")).status_code == 404
            assert (await client.get("/api/v1/private/x")).status_code == 401
        rows = {
            (r["tenant"], r["app"], r["route"], r["status_class"]): r["requests"]
            for r in encode_rows(gw.gateway.stats.take())
        }
        assert rows == {
            ("default", "", "* /api/v1/echo", "2xx"): 7,
            ("default", "", "none", "4xx"): 3,
            ("default", "", "* /api/v1/private", "4xx"): 1,
        }
