"""The console's browser tests: one real stack shared by every test here, and Debian's
headless Chromium driven through Playwright (``/usr/bin/chromium``; Playwright's own
browser downloads are not used).

- ``console_stack``: the stack (``edgectl up``, SQLite, in-process backends) with the
  console also served on the public port; started once for all console tests (they are
  one xdist unit, tests/scheduling.py) and stopped after the last of them.
- ``console``: a :class:`ConsoleDriver`: the stack, the console's URL, the bootstrap
  admin's password, accounts, and ``page()`` to open a browser page signed in (or not).
- ``shots``: where screenshots go (``EDGE_CONSOLE_SCREENSHOTS``, else
  ``<basetemp>/console-screenshots``); ``shot(page, name)`` saves ``<name>.png``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.e2e.accounts import PASSWORD, admin_password, user_id
from tests.e2e.conftest import Stack, Stacks

CHROMIUM = "/usr/bin/chromium"
#: The console's stack flavour (tests/e2e/conftest.py's Stacks names stacks by it).
FLAVOUR = "console"
VIEWPORT = {"width": 1400, "height": 900}
#: The route table follows sv-config (the routes page publishes there).
ROUTES_NAMESPACE = "gateway-routes"
STACK_ENV = {
    "GATEWAY_CONSOLE_PUBLIC": "true",
    "GATEWAY_ROUTES_SOURCE": f"sv-config:{ROUTES_NAMESPACE}",
    # A table of 1,000 routes is one sv-config value of ~75 KB, over the default 64 KiB
    # (test_scale.py publishes one).
    "SV_CONFIG_MAX_VALUE_BYTES": str(1 << 20),
}


def api_login(stack: Stack, username: str, password: str = PASSWORD) -> dict[str, str]:
    """A platform session of ``username`` as client type ``app`` (the console signs in
    as ``web``; auth-jwt keeps one session per client type, so these do not end it)."""
    resp = httpx.post(
        stack.public + "/api/v1/auth/login",
        json={"username": username, "password": password, "client_type": "app"},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    return {"authorization": f"Bearer {resp.json()['access_token']}"}


@dataclass
class ConsoleDriver:
    """The stack under test, its console and a browser to drive it."""

    stack: Stack
    browser: Browser
    shots: Path
    #: The bootstrap admin's API header (client type ``app``).
    admin_api: dict[str, str]
    _contexts: list[BrowserContext] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The console on the admin listener."""
        return self.stack.admin + "/console"

    @property
    def public_url(self) -> str:
        """The console on the public port (GATEWAY_CONSOLE_PUBLIC)."""
        return self.stack.public + "/admin"

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.stack.public, headers=self.admin_api, timeout=15)

    def new_page(self) -> Page:
        """A page in a fresh browser context (no cookies)."""
        context = self.browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
        context.set_default_timeout(15_000)
        self._contexts.append(context)
        return context.new_page()

    def sign_in(self, username: str, password: str, base: str | None = None) -> Page:
        """A page signed in as ``username`` (on the overview)."""
        page = self.new_page()
        page.goto((base or self.url) + "/signin")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        return page

    def admin_page(self, base: str | None = None) -> Page:
        return self.sign_in("admin", admin_password(self.stack), base)

    def register(self, prefix: str = "c", role: str | None = None) -> tuple[str, str]:
        """A new user of region east (with ``role`` in ``default``): name and id."""
        username = f"{prefix}{uuid.uuid4().hex[:10]}"
        resp = httpx.post(
            self.stack.public + "/api/v1/users",
            json={"username": username, "password": PASSWORD, "region": "east"},
            timeout=15,
        )
        assert resp.status_code == 201, resp.text
        uid = user_id(api_login(self.stack, username))
        if role is not None:
            with self.api() as api:
                resp = api.post("/api/v1/rbac/assignments", json={"user": uid, "role": role})
                assert resp.status_code in (200, 201), resp.text
        return username, uid

    def shot(self, page: Page, name: str) -> Path:
        """Save a full-page screenshot as ``<shots>/<name>.png``."""
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        for context in self._contexts:
            context.close()
        self._contexts.clear()


def _bootstrap_admin(stack: Stack) -> dict[str, str]:
    """The bootstrap admin's API header, once its admin role (and so console:admin) is in
    force at the gateway."""
    headers = api_login(stack, "admin", admin_password(stack))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        probe = httpx.get(stack.public + "/api/v1/rbac/roles", headers=headers, timeout=15)
        if probe.status_code == 200:
            return headers
        time.sleep(0.1)
    raise AssertionError("the bootstrap admin's role did not take effect")


@pytest.fixture(scope="session")
def console_shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("EDGE_CONSOLE_SCREENSHOTS")
    path = Path(configured) if configured else tmp_path_factory.getbasetemp() / "console-shots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The console tests' stack (its own, so it stops after them; see the module doc)."""
    stacks = Stacks(tmp_path_factory)
    try:
        yield stacks.get(FLAVOUR, STACK_ENV)
    finally:
        stacks.stop_all()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: tools/ci/ensure-services.sh installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def console_session(console_stack: Stack, chromium: Browser, console_shots: Path) -> ConsoleDriver:
    return ConsoleDriver(console_stack, chromium, console_shots, _bootstrap_admin(console_stack))


@pytest.fixture
def console(console_session: ConsoleDriver) -> Iterator[ConsoleDriver]:
    """The shared console driver; the browser contexts a test opens are closed after it."""
    try:
        yield console_session
    finally:
        console_session.close()


def texts(page: Page, selector: str) -> list[Any]:
    """The inner texts of every element ``selector`` matches."""
    return [el.inner_text() for el in page.query_selector_all(selector)]
