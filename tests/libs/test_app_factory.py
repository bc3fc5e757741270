"""The service app factory, on a tiny app built inline."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, ClassVar

import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from edgelib.app import create_service_app
from edgelib.deps import InternalCaller
from edgelib.problems import Conflict
from edgelib.settings import DEV_SERVICE_SECRET, ServiceSettings
from edgelib.signing import ServiceSigner
from edgelib.uow import SessionDep
from tests.helpers import running

MIGRATIONS = Path(__file__).parents[2] / "app/sv-region/sv_region/migrations"


class TinySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TINY_", extra="ignore")
    service_name: ClassVar[str] = "tiny"


class Item(BaseModel):
    name: str
    size: int


def tiny_app(tmp_path: Path, *, with_db: bool = True) -> FastAPI:
    settings = TinySettings(var_dir=tmp_path, port=7999, region="east")
    app = create_service_app(
        settings,
        title="tiny",
        migrations=MIGRATIONS if with_db else None,
        api_prefix="/api/v1/tiny",
    )

    @app.post("/api/v1/tiny/items", status_code=201)
    async def create(item: Item, session: SessionDep) -> Item:
        await session.execute(text("INSERT INTO regions (name) VALUES (:n)"), {"n": item.name})
        if item.size < 0:
            raise Conflict("negative size", size=item.size)
        return item

    @app.get("/api/v1/tiny/regions")
    async def regions(session: SessionDep) -> list[str]:
        rows = await session.execute(text("SELECT name FROM regions ORDER BY name"))
        return [r[0] for r in rows]

    @app.get("/api/v1/tiny/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals password=hunter2")

    @app.get("/api/v1/tiny/database-away")
    async def database_away() -> None:
        # What asyncpg raises when PostgreSQL is down, as SQLAlchemy wraps it.
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as exc:
            raise DBAPIError("SELECT 1", None, exc, connection_invalidated=True) from exc

    @app.get("/api/v1/tiny/file-missing")
    async def file_missing() -> None:
        raise FileNotFoundError(2, "No such file")

    @app.post("/internal/echo")
    async def echo(
        payload: dict[str, int], caller: Annotated[str, InternalCaller(allowed={"sv-user"})]
    ) -> dict[str, object]:
        return {"caller": caller, "payload": payload}

    return app


async def test_health_readiness_and_metrics_answer(tmp_path: Path) -> None:
    async with running(tiny_app(tmp_path)) as client:
        assert (await client.get("/healthz")).json()["status"] == "ok"
        ready = (await client.get("/readyz")).json()
        assert ready["checks"] == {"database": "ok", "backend": "ok"}
        await client.get("/api/v1/tiny/about")
        metrics = (await client.get("/metrics")).text
        assert (
            'edge_http_requests_total{method="GET",route="/api/v1/tiny/about",'
            'service="tiny",status_class="2xx"} 1.0'
        ) in metrics


def samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in a Prometheus text exposition."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) :].rsplit(" ", 1)
            found[labels] = float(value)
    return found


async def test_red_metrics_label_requests_by_route_template_and_status_class(
    tmp_path: Path,
) -> None:
    app = tiny_app(tmp_path)

    @app.get("/api/v1/tiny/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    async with running(app, raise_app_exceptions=False) as client:
        for n in (1, 2, 3):
            assert (await client.get(f"/api/v1/tiny/things/{n}")).status_code == 200
        assert (await client.get("/api/v1/tiny/things/x")).status_code == 422
        assert (await client.get("/no/such/path/7")).status_code == 404
        assert (await client.get("/api/v1/tiny/boom")).status_code == 500
        await client.get("/healthz")
        text = (await client.get("/metrics")).text
    counts = samples(text, "edge_http_requests_total")
    route = 'method="GET",route="/api/v1/tiny/things/{thing_id}",service="tiny"'
    assert counts[f'{{{route},status_class="2xx"}}'] == 3
    assert counts[f'{{{route},status_class="4xx"}}'] == 1
    assert counts['{method="GET",route="none",service="tiny",status_class="4xx"}'] == 1
    assert counts['{method="GET",route="/api/v1/tiny/boom",service="tiny",status_class="5xx"}'] == 1
    # The raw path never becomes a label; probes and scrapes are not counted.
    assert "/no/such/path" not in text
    assert "things/1" not in text
    assert "/healthz" not in text
    durations = samples(text, "edge_http_request_duration_seconds_count")
    assert durations[f"{{{route}}}"] == 4
    buckets = samples(text, "edge_http_request_duration_seconds_bucket")
    assert buckets[f'{{le="+Inf",{route}}}'] == 4
    assert samples(text, "edge_http_requests_in_flight") == {'{service="tiny"}': 0.0}


async def test_in_flight_gauge_counts_requests_being_answered(tmp_path: Path) -> None:
    app = tiny_app(tmp_path, with_db=False)
    release = asyncio.Event()
    entered = asyncio.Event()

    @app.get("/api/v1/tiny/slow")
    async def slow() -> dict[str, bool]:
        entered.set()
        await release.wait()
        return {"ok": True}

    async with running(app) as client:
        pending = asyncio.create_task(client.get("/api/v1/tiny/slow"))
        await asyncio.wait_for(entered.wait(), 5)
        during = samples((await client.get("/metrics")).text, "edge_http_requests_in_flight")
        release.set()
        assert (await pending).status_code == 200
        after = samples((await client.get("/metrics")).text, "edge_http_requests_in_flight")
    assert during == {'{service="tiny"}': 1.0}
    assert after == {'{service="tiny"}': 0.0}


async def test_unknown_methods_share_one_label(tmp_path: Path) -> None:
    async with running(tiny_app(tmp_path, with_db=False)) as client:
        for method in ("BREW", "WHEN", "PROPFIND"):
            await client.request(method, "/api/v1/tiny/about")
        text = (await client.get("/metrics")).text
    counts = samples(text, "edge_http_requests_total")
    assert sum(v for k, v in counts.items() if 'method="OTHER"' in k) == 3
    assert "BREW" not in text


async def test_readiness_fails_with_problem_when_backend_is_down(tmp_path: Path) -> None:
    app = tiny_app(tmp_path)
    async with running(app) as client:
        await app.state.backend.close()
        resp = await client.get("/readyz")
    assert resp.status_code == 503
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["checks"]["backend"].startswith("failed")


async def test_migrations_ran_and_session_commits_per_request(tmp_path: Path) -> None:
    async with running(tiny_app(tmp_path)) as client:
        assert (
            await client.post("/api/v1/tiny/items", json={"name": "a", "size": 1})
        ).status_code == 201
        assert (await client.get("/api/v1/tiny/regions")).json() == ["a"]


async def test_service_error_rolls_back_the_request_session(tmp_path: Path) -> None:
    async with running(tiny_app(tmp_path)) as client:
        resp = await client.post("/api/v1/tiny/items", json={"name": "b", "size": -1})
        assert resp.status_code == 409
        body = resp.json()
        assert body["type"].endswith("/conflict")
        assert body["size"] == -1
        assert (await client.get("/api/v1/tiny/regions")).json() == []


async def test_validation_error_is_problem_json_422(tmp_path: Path) -> None:
    async with running(tiny_app(tmp_path)) as client:
        resp = await client.post("/api/v1/tiny/items", json={"name": "a", "size": "big"})
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["type"].endswith("/validation-error")
    assert body["errors"][0]["loc"] == ["body", "size"]
    assert body["trace_id"]


async def test_malformed_json_body_is_a_4xx_problem(tmp_path: Path) -> None:
    async with running(tiny_app(tmp_path)) as client:
        resp = await client.post(
            "/api/v1/tiny/items", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"


async def test_unknown_route_and_method_are_problem_json(tmp_path: Path) -> None:
    async with running(tiny_app(tmp_path, with_db=False)) as client:
        not_found = await client.get("/nope")
        wrong_method = await client.delete("/api/v1/tiny/about")
    assert not_found.status_code == 404
    assert not_found.json()["type"].endswith("/not-found")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"


async def test_database_away_is_503_problem_with_retry_after_and_a_bug_stays_500(
    tmp_path: Path,
) -> None:
    app = tiny_app(tmp_path, with_db=False)
    # raise_app_exceptions=True: an error answered by a handler that re-raised would fail
    # here (uvicorn closes such a connection, which the gateway may reuse: 502).
    async with running(app) as client:
        away = await client.get("/api/v1/tiny/database-away")
        bug = await client.get("/api/v1/tiny/file-missing")
    assert away.status_code == 503
    assert away.headers["content-type"] == "application/problem+json"
    assert away.headers["retry-after"] == "1"
    assert away.json()["type"].endswith("/service-unavailable")
    assert bug.status_code == 500
    assert bug.headers["content-type"] == "application/problem+json"


async def test_crash_is_500_problem_without_stack_trace(tmp_path: Path) -> None:
    app = tiny_app(tmp_path, with_db=False)
    async with running(app, raise_app_exceptions=False) as client:
        resp = await client.get("/api/v1/tiny/boom")
    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in resp.text
    assert "hunter2" not in resp.text
    assert resp.json()["trace_id"]


async def test_request_id_is_kept_and_logs_carry_trace_and_request_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running(tiny_app(tmp_path, with_db=False)) as client:
        resp = await client.get("/api/v1/tiny/about", headers={"x-request-id": "req-123"})
    assert resp.headers["x-request-id"] == "req-123"
    assert resp.headers["x-edge-instance"] == "tiny-east-7999"
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    access = [line for line in lines if line.get("logger") == "edge.access"]
    assert access, lines
    assert access[-1]["request_id"] == "req-123"
    assert len(access[-1]["trace_id"]) == 32
    assert access[-1]["service"] == "tiny"
    assert access[-1]["region"] == "east"


async def test_incoming_traceparent_continues_the_trace(tmp_path: Path) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with running(tiny_app(tmp_path, with_db=False)) as client:
        resp = await client.get(
            "/nope", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
        )
    assert resp.json()["trace_id"] == trace_id


async def test_internal_endpoint_refuses_unsigned_and_accepts_signed(tmp_path: Path) -> None:
    app = tiny_app(tmp_path, with_db=False)
    async with running(app) as client:
        unsigned = await client.post("/internal/echo", json={"a": 1})
        assert unsigned.status_code == 401
        assert unsigned.headers["content-type"] == "application/problem+json"

        body = b'{"a":1}'
        secret = DEV_SERVICE_SECRET
        headers = ServiceSigner("sv-user", secret).to("tiny").sign("POST", "/internal/echo", body)
        signed = await client.post(
            "/internal/echo", content=body, headers={**headers, "content-type": "application/json"}
        )
        assert signed.status_code == 200
        assert signed.json() == {"caller": "sv-user", "payload": {"a": 1}}

        forged = (
            ServiceSigner("sv-user", "wrong-secret").to("tiny").sign("POST", "/internal/echo", body)
        )
        resp = await client.post(
            "/internal/echo", content=body, headers={**forged, "content-type": "application/json"}
        )
        assert resp.status_code == 401


async def test_a_replayed_signed_request_is_refused_inside_its_window(tmp_path: Path) -> None:
    app = tiny_app(tmp_path, with_db=False)
    async with running(app) as client:
        body = b'{"a":1}'
        secret = DEV_SERVICE_SECRET
        signed = ServiceSigner("sv-user", secret).to("tiny").sign("POST", "/internal/echo", body)
        headers = {**signed, "content-type": "application/json"}
        assert (
            await client.post("/internal/echo", content=body, headers=headers)
        ).status_code == 200
        replay = await client.post("/internal/echo", content=body, headers=headers)
        assert replay.status_code == 401
        assert replay.headers["content-type"] == "application/problem+json"
        assert "replayed" in replay.json()["detail"]
        # A fresh signature (a new nonce) for the same request is fine.
        again = ServiceSigner("sv-user", secret).to("tiny").sign("POST", "/internal/echo", body)
        resp = await client.post(
            "/internal/echo", content=body, headers={**again, "content-type": "application/json"}
        )
        assert resp.status_code == 200


async def test_a_valid_signature_from_a_caller_not_listed_is_403(tmp_path: Path) -> None:
    app = tiny_app(tmp_path, with_db=False)
    async with running(app) as client:
        body = b'{"a":1}'
        secret = DEV_SERVICE_SECRET
        signed = ServiceSigner("sv-notice", secret).to("tiny").sign("POST", "/internal/echo", body)
        resp = await client.post(
            "/internal/echo", content=body, headers={**signed, "content-type": "application/json"}
        )
        assert resp.status_code == 403
        assert resp.headers["content-type"] == "application/problem+json"


async def test_a_signature_made_for_another_destination_is_refused(tmp_path: Path) -> None:
    app = tiny_app(tmp_path, with_db=False)
    async with running(app) as client:
        body = b'{"a":1}'
        secret = DEV_SERVICE_SECRET
        elsewhere = (
            ServiceSigner("sv-user", secret).to("auth-rbac").sign("POST", "/internal/echo", body)
        )
        resp = await client.post(
            "/internal/echo",
            content=body,
            headers={**elsewhere, "content-type": "application/json"},
        )
        assert resp.status_code == 401
