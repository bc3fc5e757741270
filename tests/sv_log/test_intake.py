"""Intake: signed batches are stored whole (202); bad or oversized ones are refused whole."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import orjson
import pytest

from tests.sv_log.conftest import TRACE, record, ship, signed, stored


async def test_batch_is_accepted_with_202_and_stored_in_full(sv_log: httpx.AsyncClient) -> None:
    batch = [
        record("first", trace_id=TRACE, request_id="r-1", attributes={"path": "/x", "n": 1}),
        record("second", level="WARN"),
    ]
    resp = await ship(sv_log, batch)
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 2, "duplicate": False}
    items = await stored(sv_log)
    assert [i["message"] for i in items] == ["second", "first"]
    first = items[1]
    assert first["trace_id"] == TRACE
    assert first["request_id"] == "r-1"
    assert first["attributes"] == {"path": "/x", "n": 1}
    assert first["service"] == "sv-user"
    assert first["region"] == "east"
    assert items[0]["level"] == "warning"


async def test_gzip_batch_is_accepted(sv_log: httpx.AsyncClient) -> None:
    body = gzip.compress(orjson.dumps({"records": [record("zipped")]}))
    resp = await sv_log.post(
        "/internal/logs", content=body, headers=signed(body, **{"content-encoding": "gzip"})
    )
    assert resp.status_code == 202, resp.text
    assert [i["message"] for i in await stored(sv_log)] == ["zipped"]


async def test_unsigned_or_forged_intake_is_refused(sv_log: httpx.AsyncClient) -> None:
    body = orjson.dumps({"records": [record()]})
    resp = await sv_log.post(
        "/internal/logs", content=body, headers={"content-type": "application/json"}
    )
    assert resp.status_code == 401
    tampered = orjson.dumps({"records": [record("evil")]})
    resp = await sv_log.post("/internal/logs", content=tampered, headers=signed(body))
    assert resp.status_code == 401
    assert await stored(sv_log) == []


async def test_retried_batch_with_same_idempotency_key_is_stored_once(
    sv_log: httpx.AsyncClient,
) -> None:
    batch = [record("once")]
    assert (await ship(sv_log, batch, **{"idempotency-key": "k-1"})).json()["accepted"] == 1
    again = await ship(sv_log, batch, **{"idempotency-key": "k-1"})
    assert again.status_code == 202
    assert again.json() == {"accepted": 0, "duplicate": True}
    assert len(await stored(sv_log)) == 1


async def test_resend_after_an_unsettled_failure_is_retried_never_acknowledged_unstored(
    log_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails a batch and the cache then drops the call that would free its key:
    the resend must get 503 (try again), not "duplicate", or an acknowledged batch is lost."""
    import asyncio

    from edgelib.backends import BackendError
    from sv_log import service as service_module
    from sv_log.exceptions import StoreUnavailable
    from tests.sv_log.conftest import open_sv_log

    monkeypatch.setattr(service_module, "PENDING_SECONDS", 0.5)
    async with open_sv_log(log_settings) as (app, client):
        log_service = app.state.log_service
        real_insert, real_delete = log_service.store.insert, log_service.backend.delete

        async def failing_insert(records: Any) -> Any:
            raise StoreUnavailable("the database went away")

        async def failing_delete(*keys: str) -> int:
            raise BackendError("connection reset")

        monkeypatch.setattr(log_service.store, "insert", failing_insert)
        monkeypatch.setattr(log_service.backend, "delete", failing_delete)
        batch = [record("unsettled")]
        first = await ship(client, batch, **{"idempotency-key": "k-unsettled"})
        assert first.status_code == 503
        monkeypatch.setattr(log_service.store, "insert", real_insert)
        monkeypatch.setattr(log_service.backend, "delete", real_delete)

        resend = await ship(client, batch, **{"idempotency-key": "k-unsettled"})
        assert resend.status_code == 503, resend.text
        assert resend.headers["content-type"].startswith("application/problem+json")
        assert resend.json()["type"].endswith("log-batch-in-progress")
        assert resend.headers["retry-after"] == "1"
        assert await stored(client) == []

        await asyncio.sleep(0.6)  # the claim of the failed send has expired
        later = await ship(client, batch, **{"idempotency-key": "k-unsettled"})
        assert later.json() == {"accepted": 1, "duplicate": False}
        again = await ship(client, batch, **{"idempotency-key": "k-unsettled"})
        assert again.json() == {"accepted": 0, "duplicate": True}
        assert [r["message"] for r in await stored(client)] == ["unsettled"]


async def test_nul_characters_and_odd_attributes_are_stored_safely(
    sv_log: httpx.AsyncClient,
) -> None:
    attrs = {
        "a.b": 1,
        "$where": "x",
        "big": 2**64 - 1,
        "nul\x00key": "v\x00",
        "deep": [{"x": None}],
    }
    resp = await ship(sv_log, [record("bad\x00byte", attributes=attrs)])
    assert resp.status_code == 202, resp.text
    (item,) = await stored(sv_log)
    assert item["message"] == "bad\ufffdbyte"


GOOD = orjson.dumps({"records": [record()]})

MALFORMED: dict[str, tuple[bytes, dict[str, str], int]] = {
    "not-json": (b"{nope", {}, 400),
    "not-utf8": (b'{"records": ["\xff"]}', {}, 400),
    "array-not-object": (b"[]", {}, 400),
    "extra-top-level-key": (b'{"records": [], "x": 1}', {}, 400),
    "records-not-array": (b'{"records": {}}', {}, 400),
    "record-not-object": (orjson.dumps({"records": [record(), 5]}), {}, 422),
    "missing-message": (orjson.dumps({"records": [record(), record(message=None)]}), {}, 422),
    "unknown-level": (orjson.dumps({"records": [record(), record(level="loud")]}), {}, 422),
    "bad-trace-id": (orjson.dumps({"records": [record(), record(trace_id="xyz")]}), {}, 422),
    "bad-timestamp": (orjson.dumps({"records": [record(), record(ts="yesterday")]}), {}, 422),
    "timestamp-overflow": (
        orjson.dumps({"records": [record(ts="0001-01-01T00:00:00+05:00")]}),
        {},
        422,
    ),
    "unknown-field": (orjson.dumps({"records": [record(), record(colour="red")]}), {}, 422),
    "service-too-long": (orjson.dumps({"records": [record(service="s" * 65)]}), {}, 422),
    "bad-gzip": (b"\x1f\x8b not really", {"content-encoding": "gzip"}, 400),
    "truncated-gzip": (gzip.compress(GOOD)[:-8], {"content-encoding": "gzip"}, 400),
    "unknown-encoding": (GOOD, {"content-encoding": "br"}, 415),
    "not-json-content-type": (GOOD, {"content-type": "text/plain"}, 415),
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_batch_is_refused_with_a_problem_and_nothing_stored(
    sv_log: httpx.AsyncClient, case: str
) -> None:
    body, extra, status = MALFORMED[case]
    headers = signed(body)
    headers.update(extra)
    resp = await sv_log.post("/internal/logs", content=body, headers=headers)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["status"] == status
    assert await stored(sv_log) == []


async def _refused_as_too_large(client: httpx.AsyncClient, body: bytes, **headers: str) -> Any:
    resp = await client.post("/internal/logs", content=body, headers=signed(body, **headers))
    assert resp.status_code == 413, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert await stored(client) == []
    return resp.json()


@pytest.mark.parametrize("store", ["sqlite"])
async def test_oversized_batches_are_refused_with_413_and_nothing_stored(
    sv_log: httpx.AsyncClient,
) -> None:
    # Too many records (the default limit is 5000).
    many = orjson.dumps({"records": [record(f"m{i}") for i in range(5001)]})
    assert "5001 records" in (await _refused_as_too_large(sv_log, many))["detail"]
    # One record over 32 KiB among good ones: the whole batch goes, and the problem says which.
    big = orjson.dumps({"records": [record(), record("x" * 40_000), record()]})
    assert (await _refused_as_too_large(sv_log, big))["records"] == [1]
    # A small gzip body that inflates past 8 MiB (a gzip bomb).
    bomb = gzip.compress(b'{"records": ["' + b"a" * (9 * 1024 * 1024) + b'"]}')
    assert len(bomb) < 64 * 1024
    await _refused_as_too_large(sv_log, bomb, **{"content-encoding": "gzip"})
    # A body over 4 MiB on the wire, refused by its Content-Length before it is read.
    huge = orjson.dumps({"records": [record("y" * 30_000) for _ in range(150)]})
    assert len(huge) > 4 * 1024 * 1024
    await _refused_as_too_large(sv_log, huge)


@pytest.mark.parametrize("store", ["sqlite"])
async def test_streamed_body_over_the_limit_is_cut_off_with_413(sv_log: httpx.AsyncClient) -> None:
    body = orjson.dumps({"records": [record("z" * 30_000) for _ in range(150)]})

    async def chunks() -> Any:
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    headers = signed(body)
    resp = await sv_log.post("/internal/logs", content=chunks(), headers=headers)
    assert resp.status_code == 413, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert await stored(sv_log) == []
