"""The console's browser tests: one real stack shared by every test here, and Debian's
headless Chromium driven through Playwright (``/usr/bin/chromium``; Playwright's own
browser downloads are not used).

- ``console_stack``: the stack (``edgectl up``, SQLite, in-process backends) with the
  console also served on the public port and the route table following sv-config;
  started once for all console tests (they are one xdist unit, tests/scheduling.py)
  and stopped, with the browser, after the last of them (:class:`_Shared`).
- ``console``: a :class:`ConsoleDriver`: the stack, the console's URLs, pages signed in
  (or not), accounts, the admin's API client, and ``shot(page, name)``.
- ``console_shots``: where screenshots go (``EDGE_CONSOLE_SCREENSHOTS``, else
  ``<basetemp>/console-shots``).
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
from tests.scheduling import CONSOLE_TESTS

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


class _Shared:
    """The console tests' stack and browser: started by the first console test that
    needs them, stopped after the last console test (not at the end of the session: a
    worker goes on to other tests, and an idle stack and browser would only cost, and
    Playwright's loop must not outlive the console tests)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.stacks: Stacks | None = None
        self.stack: Stack | None = None
        self.playwright: Any = None
        self.browser: Browser | None = None
        self.driver: ConsoleDriver | None = None

    def get_stack(self) -> Stack:
        if self.stack is None:
            self.stacks = Stacks(self.tmp_path_factory)
            self.stack = self.stacks.get(FLAVOUR, STACK_ENV)
        return self.stack

    def get_browser(self) -> Browser:
        if self.browser is None:
            if not Path(CHROMIUM).exists():
                pytest.fail("chromium is missing: tools/ci/ensure-services.sh installs it")
            self.playwright = sync_playwright().start()
            self.browser = self.playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
        return self.browser

    def stop(self) -> None:
        try:
            if self.driver is not None:
                self.driver.close()
            if self.browser is not None:
                self.browser.close()
            if self.playwright is not None:
                self.playwright.stop()
        finally:
            self.driver = self.browser = self.playwright = None
            if self.stacks is not None:
                self.stacks.stop_all()
            self.stacks = self.stack = None


_SHARED = pytest.StashKey[_Shared]()


def _shared(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> _Shared:
    if _SHARED not in config.stash:
        config.stash[_SHARED] = _Shared(tmp_path_factory)
    return config.stash[_SHARED]


def _is_console(item: pytest.Item | None) -> bool:
    return item is not None and item.nodeid.startswith(CONSOLE_TESTS)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the last console test in a row, stop the browser and the stack."""
    shared = item.config.stash.get(_SHARED, None)
    if shared is not None and not _is_console(nextitem):
        shared.stop()


def pytest_sessionfinish(session: pytest.Session) -> None:
    shared = session.config.stash.get(_SHARED, None)
    if shared is not None:
        shared.stop()


@pytest.fixture
def console_shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("EDGE_CONSOLE_SCREENSHOTS")
    path = Path(configured) if configured else tmp_path_factory.getbasetemp() / "console-shots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def console_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Stack:
    """The console tests' stack (one for all of them; see :class:`_Shared`)."""
    return _shared(request.config, tmp_path_factory).get_stack()


@pytest.fixture
def console_session(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    console_stack: Stack,
    console_shots: Path,
) -> ConsoleDriver:
    shared = _shared(request.config, tmp_path_factory)
    if shared.driver is None:
        shared.driver = ConsoleDriver(
            console_stack, shared.get_browser(), console_shots, _bootstrap_admin(console_stack)
        )
    return shared.driver


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
