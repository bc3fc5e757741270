"""Log shipping: never in a request's way, bounded, counted, and nothing lost that fits."""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pydantic_settings import SettingsConfigDict

from edgelib.app import create_service_app
from edgelib.logs import reset_request_id, set_request_id
from edgelib.logship import (
    MAX_MESSAGE_CHARS,
    HttpSink,
    LogShipper,
    ShipError,
    ShippingHandler,
    ShipRejected,
)
from edgelib.settings import DEV_SERVICE_SECRET, ServiceSettings
from edgelib.signing import ServiceSigner
from sv_log.config import Settings as LogSettings
from sv_log.main import create_app as create_sv_log
from tests.helpers import grant, running
from tests.sv_log.conftest import READER, query, serving
from tests.worker import free_port


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("edge_log_shipping_dropped_total", {"reason": reason}) or 0.0


class Recorder:
    """A sink that stores batches, or fails/hangs on demand."""

    def __init__(self, *, fail_first: int = 0, reject: bool = False) -> None:
        self.batches: list[list[dict[str, object]]] = []
        self.fail_first = fail_first
        self.reject = reject
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self, records: Sequence[bytes]) -> None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.calls <= self.fail_first:
            raise ShipError("sv-log is down")
        if self.reject:
            raise ShipRejected("413")
        self.batches.append([orjson.loads(r) for r in records])

    @property
    def messages(self) -> list[object]:
        return [r["message"] for b in self.batches for r in b]


def isolated_logger(name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


async def wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_logging_never_blocks_and_the_queue_stays_bounded_while_sv_log_hangs() -> None:
    sink = Recorder()
    sink.gate = asyncio.Event()  # every send hangs, as with a frozen sv-log
    shipper = LogShipper(sink, max_queue=100, batch_size=10, flush_interval=0.01)
    log = isolated_logger("t.hang")
    before = dropped("queue_full")
    async with shipper.installed(service="t", instance="t-1", region=None, logger_name="t.hang"):
        await asyncio.sleep(0.05)
        # Finishing at all shows nothing waited on the hung sink or the full queue; the
        # thread's CPU time (not wall time, which neighbours' load inflates) is the cost.
        started = time.thread_time()
        for i in range(5000):
            log.info("request %d", i)
        per_record = (time.thread_time() - started) / 5000
        assert shipper.pending <= 100 + 10
        assert shipper.dropped >= 5000 - 110
        assert dropped("queue_full") - before == shipper.dropped
        sink.gate.set()
    assert per_record < 100e-6, f"{per_record * 1e6:.1f} µs per record"


async def test_batches_held_while_sv_log_is_down_arrive_once_and_in_order() -> None:
    sink = Recorder(fail_first=3)
    shipper = LogShipper(sink, batch_size=20, flush_interval=0.01, backoff_start=0.01)
    log = isolated_logger("t.down")
    async with shipper.installed(service="t", instance="t-1", region=None, logger_name="t.down"):
        for i in range(50):
            log.info("m%d", i)
        await wait_until(lambda: len(sink.messages) == 50)
    assert sink.messages == [f"m{i}" for i in range(50)]
    assert shipper.failures == 3
    assert shipper.dropped == 0
    assert all(len(b) <= 20 for b in sink.batches)


async def test_refused_batch_is_dropped_and_counted_and_shipping_goes_on() -> None:
    sink = Recorder(reject=True)
    shipper = LogShipper(sink, flush_interval=0.01)
    log = isolated_logger("t.reject")
    before = dropped("rejected")
    async with shipper.installed(service="t", instance="t-1", region=None, logger_name="t.reject"):
        log.info("refused")
        await wait_until(lambda: shipper.dropped == 1)
        sink.reject = False
        log.info("accepted")
        await wait_until(lambda: sink.messages == ["accepted"])
    assert dropped("rejected") - before == 1


async def test_what_the_shipper_logs_itself_is_never_shipped() -> None:
    log = isolated_logger("t.self")

    async def chatty(records: Sequence[bytes]) -> None:
        log.warning("sink says hello")  # e.g. an HTTP client's own log line
        sent.extend(records)

    sent: list[bytes] = []
    shipper = LogShipper(chatty, flush_interval=0.01)
    async with shipper.installed(service="t", instance="t-1", region=None, logger_name="t.self"):
        log.info("one")
        await wait_until(lambda: len(sent) == 1)
        await asyncio.sleep(0.1)
    assert len(sent) == 1


def test_record_is_encoded_as_sv_log_expects_with_secrets_redacted_and_size_capped() -> None:
    handler = ShippingHandler(
        LogShipper(Recorder()), service="sv-user", instance="sv-user-1", region="east"
    )
    token = set_request_id("req-1")
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            rec = logging.LogRecord("app", logging.ERROR, __file__, 1, "x" * 20000, (), None)
            rec.exc_info = sys.exc_info()
        rec.password = "hunter2"
        rec.user_id = 42
        doc = orjson.loads(handler.encode(rec))
    finally:
        reset_request_id(token)
    assert doc["service"] == "sv-user"
    assert doc["region"] == "east"
    assert doc["level"] == "error"
    assert doc["request_id"] == "req-1"
    assert len(doc["message"]) == MAX_MESSAGE_CHARS
    assert doc["attributes"]["truncated"] is True
    assert doc["attributes"]["password"] == "[redacted]"
    assert doc["attributes"]["user_id"] == 42
    assert "ValueError: boom" in doc["attributes"]["exception"]
    assert "hunter2" not in orjson.dumps(doc).decode()


async def test_http_sink_ships_signed_gzip_batches_and_fails_softly_when_down(
    tmp_path: Path,
) -> None:
    signer = ServiceSigner("sv-user", DEV_SERVICE_SECRET).to("sv-log")
    handler = ShippingHandler(LogShipper(Recorder()), service="sv-user", instance="i", region=None)
    records = [
        handler.encode(logging.LogRecord("a", logging.INFO, "f", 1, f"via http {i}", (), None))
        for i in range(3)
    ]
    dead = HttpSink(f"http://127.0.0.1:{free_port()}", signer, timeout=1)
    with pytest.raises(ShipError):
        await dead(records)
    await dead.aclose()
    app = grant(create_sv_log(LogSettings(var_dir=tmp_path)), READER.user_id, "logs:read")
    async with serving(app) as base:
        sink = HttpSink(base, signer)
        await sink(records)
        await sink(records)  # a retry of the same batch is recognised and not stored twice
        await sink.aclose()
        async with httpx.AsyncClient(base_url=base) as client:
            page = await query(client, service="sv-user", order="asc")
    assert [i["message"] for i in page["items"]] == [f"via http {i}" for i in range(3)]


class TinySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TINY_", extra="ignore")
    # sv-log takes batches only from the platform's services (its intake's caller list).
    service_name: ClassVar[str] = "sv-region"


def tiny(tmp_path: Path, log_url: str | None) -> FastAPI:
    settings = TinySettings(var_dir=tmp_path, log_url=log_url, log_ship_queue=200)
    app = create_service_app(settings, title="tiny", api_prefix="/api/v1/tiny")
    return app


async def _latencies(client: httpx.AsyncClient, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        assert (await client.get("/api/v1/tiny/about")).status_code == 200
        out.append(time.perf_counter() - started)
    return out


async def test_service_serves_at_full_speed_while_sv_log_is_down_then_ships_when_back(
    tmp_path: Path,
) -> None:
    port = free_port()
    app = tiny(tmp_path / "b", f"http://127.0.0.1:{port}")
    # The same service without shipping, measured in turns with the other so that both
    # see the same load from whatever else runs on the machine.
    async with running(tiny(tmp_path / "a", None)) as plain, running(app) as client:
        shipper: LogShipper = app.state.log_shipper
        baseline: list[float] = []
        down: list[float] = []
        for _ in range(40):
            baseline += await _latencies(plain, 10)
            down += await _latencies(client, 10)
        # Each request logged two lines (access log, client log): 800 for a queue of 200.
        assert shipper.pending <= 200 + shipper.batch_size
        assert shipper.dropped > 0
        await wait_until(lambda: shipper.failures > 0)
        assert statistics.median(down[40:]) < statistics.median(baseline[40:]) * 1.5 + 0.0005
        metrics = (await client.get("/metrics")).text
        assert 'edge_log_shipping_dropped_total{reason="queue_full"}' in metrics
        log_app = grant(
            create_sv_log(LogSettings(var_dir=tmp_path / "log")), READER.user_id, "logs:read"
        )
        async with serving(log_app, port):
            marker = "shipped after sv-log came back"
            backlog = shipper.pending
            logging.getLogger("tiny").warning(marker)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as log_client:

                async def arrived() -> bool:
                    page = await query(log_client, service="sv-region", q="came back")
                    return any(i["message"] == marker for i in page["items"])

                deadline = time.monotonic() + 20
                while not await arrived():
                    assert time.monotonic() < deadline, "records did not arrive"
                    await asyncio.sleep(0.2)
            # The queue is first in, first out: the backlog went before the marker.
            assert shipper.shipped >= backlog
