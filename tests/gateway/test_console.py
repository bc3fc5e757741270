"""The console's parts in process: its bounded session store, form reader, paging, and
the app's answers without a session (redirects, 403s, security headers)."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import FastAPI, Request

from gateway_api.config import Settings
from gateway_api.console.app import SECURITY_HEADERS, create_console_app
from gateway_api.console.forms import MAX_FORM_BYTES, FormError, read_form
from gateway_api.console.paging import Window, paginate
from gateway_api.console.sessions import ConsoleSession, SessionStore
from gateway_api.gateway import Gateway


def _session(name: str = "u") -> ConsoleSession:
    return ConsoleSession(
        user_id=name, username=name, tenant="default", access_token="a", refresh_token="r",
        access_expires=0.0,
    )  # fmt: skip


def test_the_session_store_drops_the_least_recently_used_when_full() -> None:
    store = SessionStore(max_sessions=2, idle_timeout=60, max_age=600)
    a, b, c = (store.add(_session(n)) for n in "abc")
    assert store.get(a.id) is None
    assert store.get(b.id) is b
    assert store.get(c.id) is c
    assert len(store) == 2


def test_an_idle_session_has_ended() -> None:
    store = SessionStore(max_sessions=10, idle_timeout=0.05, max_age=600)
    s = store.add(_session())
    assert store.get(s.id) is s
    time.sleep(0.08)
    assert store.get(s.id) is None
    assert store.get("") is None


def test_session_ids_and_csrf_tokens_are_random_and_distinct() -> None:
    a, b = _session(), _session()
    assert len({a.id, b.id, a.csrf, b.csrf}) == 4
    assert len(a.id) >= 40


def test_paginate_searches_and_cuts_one_page() -> None:
    rows = [f"route-{i}" for i in range(120)]
    page = paginate(rows, Window(q="route-1", offset=0, limit=5), str)
    assert page.total == 31  # route-1, route-10..19, route-100..119
    assert list(page.items) == ["route-1", "route-10", "route-11", "route-12", "route-13"]
    assert page.has_next
    assert not page.has_previous
    assert "q=route-1" in page.query(page.next_offset)


def _form_app() -> FastAPI:
    app = FastAPI()

    @app.post("/f")
    async def f(request: Request) -> dict[str, object]:
        try:
            form = await read_form(request)
        except FormError as exc:
            return {"status": exc.status}
        return {"a": form.getlist("a"), "b": form.get("b", "none")}

    return app


async def test_forms_are_read_with_bounds() -> None:
    transport = httpx.ASGITransport(app=_form_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        ok = await client.post(
            "/f", content=b"a=1&a=2", headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert ok.json() == {"a": ["1", "2"], "b": "none"}
        big = await client.post(
            "/f",
            content=b"a=" + b"x" * MAX_FORM_BYTES,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert big.json() == {"status": 413}
        other = await client.post(
            "/f", content=b'{"a": 1}', headers={"content-type": "application/json"}
        )
        assert other.json() == {"status": 415}


@pytest.fixture
async def console() -> httpx.AsyncClient:
    settings = Settings()
    app = create_console_app(settings, Gateway(settings))
    transport = httpx.ASGITransport(app=app, root_path="/console")
    return httpx.AsyncClient(transport=transport, base_url="http://t/console")


async def test_pages_without_a_session_redirect_to_sign_in(console: httpx.AsyncClient) -> None:
    async with console:
        assert (await console.get("/")).headers["location"] == "/console/overview"
        for path in ("/overview", "/services", "/routes", "/tenants", "/users"):
            resp = await console.get(path)
            assert resp.status_code == 303, path
            assert resp.headers["location"].endswith("/signin"), path
            for name, value in SECURITY_HEADERS.items():
                assert resp.headers[name] == value
        htmx = await console.get("/services", headers={"hx-request": "true"})
        assert htmx.headers["hx-redirect"].endswith("/signin")


async def test_changes_without_a_session_change_nothing(console: httpx.AsyncClient) -> None:
    async with console:
        resp = await console.post("/tenants", data={"id": "x", "name": "y"})
        assert resp.status_code == 303
        forged = await console.post("/signin", data={"username": "a", "password": "b"})
        assert forged.status_code == 403
        assert "expired" in forged.text
        form = await console.get("/signin")
        assert form.status_code == 200
        assert "script-src 'self'" in form.headers["content-security-policy"]
        assert "<script>" not in form.text  # no inline script anywhere
