"""Getting into the console: sign-in, sign-out, redirects, the 403 page, CSRF, headers."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.console.conftest import ConsoleDriver, api_login
from tests.e2e.accounts import PASSWORD

pytestmark = pytest.mark.e2e


def test_signing_in_shows_the_overview_with_the_navigation(console: ConsoleDriver) -> None:
    page = console.admin_page()
    assert page.url.endswith("/console/overview"), page.url
    assert page.inner_text("h1") == "Overview"
    nav = page.inner_text("nav.side")
    for title in (
        "Overview",
        "Services",
        "Routes",
        "Tenants and apps",
        "Users",
        "RBAC",
        "Regions",
        "Config",
        "Logs",
        "Notices",
        "Wallet",
    ):
        assert title in nav


def test_without_a_session_pages_redirect_to_sign_in(console: ConsoleDriver) -> None:
    resp = httpx.get(console.url + "/services", follow_redirects=False, timeout=10)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/console/signin"
    page = console.new_page()
    page.goto(console.url + "/overview")
    assert page.url.endswith("/console/signin")
    console.shot(page, "signin")


def test_a_user_without_the_console_permission_gets_the_403_page(console: ConsoleDriver) -> None:
    username, _ = console.register("plain")
    page = console.sign_in(username, PASSWORD)
    assert page.inner_text("h1") == "Forbidden"
    assert "console:read" in page.inner_text("main")
    resp = page.request.get(console.url + "/services")
    assert resp.status == 403
    console.shot(page, "forbidden")


def test_an_operator_reads_but_cannot_change(console: ConsoleDriver) -> None:
    username, _ = console.register("oper", role="operator")
    page = console.sign_in(username, PASSWORD)
    assert page.inner_text("h1") == "Overview"
    page.goto(console.url + "/services")
    assert page.locator("button", has_text="Drain").count() == 0
    csrf = page.locator("header form input[name=csrf]").input_value()
    resp = page.request.post(
        console.url + "/services/instances/sv-log-27105/eject", form={"csrf": csrf}
    )
    assert resp.status == 403
    assert "console:admin" in resp.text()


def test_a_change_without_a_valid_csrf_token_is_refused(console: ConsoleDriver) -> None:
    page = console.admin_page()
    for form in ({}, {"csrf": "forged"}):
        resp = page.request.post(
            console.url + "/tenants", form={**form, "id": "csrfprobe", "name": "x"}
        )
        assert resp.status == 403, resp.text()
        assert "CSRF" in resp.text()
    with console.api() as api:
        assert api.get("/api/v1/tenants/csrfprobe").status_code == 404


def test_security_headers_and_signing_out(console: ConsoleDriver) -> None:
    page = console.admin_page()
    resp = page.request.get(console.url + "/overview")
    csp = resp.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert resp.headers["x-content-type-options"] == "nosniff"
    cookie = next(c for c in page.context.cookies() if c["name"] == "edge_console")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console"
    page.click("text=Sign out")
    page.wait_for_load_state()
    assert page.url.endswith("/console/signin")
    page.goto(console.url + "/overview")
    assert page.url.endswith("/console/signin")


def test_the_console_is_served_under_admin_on_the_public_port(console: ConsoleDriver) -> None:
    resp = httpx.get(console.public_url + "/overview", follow_redirects=False, timeout=10)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/admin/signin"
    page = console.admin_page(console.public_url)
    assert page.url.endswith("/admin/overview"), page.url
    assert page.inner_text("h1") == "Overview"
    cookie = next(c for c in page.context.cookies() if c["name"] == "edge_console")
    assert cookie["path"] == "/admin"
    page.goto(console.public_url + "/services")
    assert page.locator("section.pool").count() >= 8
    # The API on the same port is routed as before.
    assert httpx.get(console.stack.public + "/api/v1/regions/about", timeout=10).status_code == 200


def test_a_platform_session_revoked_elsewhere_ends_the_console_session(
    console: ConsoleDriver,
) -> None:
    username, _ = console.register("gone", role="operator")
    page = console.sign_in(username, PASSWORD)
    assert page.inner_text("h1") == "Overview"
    # The user ends every session of theirs through the API (another client type).
    headers = api_login(console.stack, username)
    resp = httpx.post(console.stack.public + "/api/v1/auth/logout-all", headers=headers, timeout=10)
    assert resp.status_code == 204, resp.text
    deadline = time.monotonic() + 5
    while True:
        page.goto(console.url + "/services")
        if page.url.endswith("/console/signin"):
            break
        assert time.monotonic() < deadline, "the console session outlived the platform's"
        time.sleep(0.2)
