"""Getting into the console: sign-in, sign-out, redirects, the 403 page, CSRF, headers."""

from __future__ import annotations

import httpx
import pytest

from tests.console.conftest import ConsoleDriver
from tests.e2e.accounts import PASSWORD

pytestmark = pytest.mark.e2e


def test_signing_in_shows_the_overview_with_the_navigation(console: ConsoleDriver) -> None:
    page = console.admin_page()
    assert page.url.endswith("/console/overview"), page.url
    assert page.inner_text("h1") == "Overview"
    nav = page.inner_text("nav.side")
    for title in ("Overview", "Services", "Routes", "Tenants and apps", "Users", "RBAC",
                  "Regions", "Config", "Logs", "Notices", "Wallet"):
        assert title in nav
    console.shot(page, "signin-overview")


def test_without_a_session_pages_redirect_to_sign_in(console: ConsoleDriver) -> None:
    resp = httpx.get(console.url + "/services", follow_redirects=False, timeout=10)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/console/signin"
    page = console.new_page()
    page.goto(console.url + "/overview")
    assert page.url.endswith("/console/signin")
    console.shot(page, "signin")
