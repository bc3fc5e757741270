"""The console with 10,000 users: searching and paging the Users page, and a role with
10,000 members on the RBAC page, answer well under a second (server-side search and
paging; the browser gets one page of rows)."""

from __future__ import annotations

import logging
import re
import statistics
import time

import httpx
import pytest

from tests.console.conftest import ConsoleDriver, api_login, texts
from tests.console.seed import seed_users
from tests.e2e.accounts import PASSWORD

pytestmark = pytest.mark.e2e

logger = logging.getLogger("tests.console.scale")

USERS = 10_000
PREFIX = "bulk"
#: A page of the console answers within this (median of several calls); the target is
#: "well under a second" on a shared 2-core machine.
LIMIT = 1.0


@pytest.fixture
def crowded(console: ConsoleDriver) -> ConsoleDriver:
    """The console's stack with 10,000 more users, each holding the ``user`` role (seeded
    by the first test that asks; the stack is shared by every console test)."""
    with console.api() as api:
        there = api.get("/api/v1/regions/directory", params={"q": f"{PREFIX}00000"}).json()
        if there["items"]:
            return console
        started = time.monotonic()
        seed_users(console.stack.var_dir, USERS, PREFIX, PASSWORD)
        logger.info("seeded %d users in %.2f s", USERS, time.monotonic() - started)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            role = api.get("/api/v1/rbac/roles/user", params={"members": "false"}).json()
            if role["member_count"] >= USERS:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("auth-rbac did not load the seeded assignments")
    return console


def timed(client: httpx.Client, url: str, rounds: int = 5) -> tuple[float, httpx.Response]:
    """The median seconds of ``rounds`` GETs of ``url``, and the last answer."""
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        resp = client.get(url)
        seconds.append(time.perf_counter() - started)
        assert resp.status_code == 200, (url, resp.status_code, resp.text[:300])
    return statistics.median(seconds), resp


def test_seeded_users_are_real_accounts(crowded: ConsoleDriver) -> None:
    api_login(crowded.stack, f"{PREFIX}04321")  # west: sv-user verifies the stored hash
    with crowded.api() as api:
        found = api.get("/api/v1/regions/directory", params={"q": f"{PREFIX}0432"}).json()
    assert [u["username"] for u in found["items"]] == [f"{PREFIX}0432{i}" for i in range(10)]


def test_users_search_and_paging_stay_fast_with_10000_users(crowded: ConsoleDriver) -> None:
    page = crowded.admin_page()
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    base = crowded.url
    measured: dict[str, float] = {}
    with httpx.Client(cookies=cookies, timeout=10) as client:
        measured["first page"], first = timed(client, f"{base}/users")
        assert first.text.count('<td><a href="/console/users/') == 50
        measured["prefix search"], found = timed(client, f"{base}/users?q={PREFIX}0999")
        assert f"{PREFIX}09990" in found.text
        assert f"{PREFIX}09999" in found.text
        measured["deep page"], deep = timed(
            client, f"{base}/users?q={PREFIX}&region=west&after={PREFIX}09000"
        )
        assert f">{PREFIX}09001<" in deep.text
        assert f">{PREFIX}09000<" not in deep.text
    with httpx.Client(cookies=cookies, timeout=10, headers={"hx-request": "true"}) as htmx:
        measured["search fragment (htmx)"], fragment = timed(htmx, f"{base}/users?q={PREFIX}05")
        assert fragment.text.lstrip().startswith('<section id="user-results"')
    with httpx.Client(cookies=cookies, timeout=10) as client:
        measured["role with 10,000 members"], role = timed(client, f"{base}/rbac/roles/user")
        shown = re.search(r"1\u201350 of (\d+)", role.text)
        assert shown is not None, role.text[role.text.find("<main") :][:2000]
        assert int(shown.group(1)) >= USERS
        measured["members, last page"], _ = timed(client, f"{base}/rbac/roles/user?offset=9950")
        measured["roles"], _ = timed(client, f"{base}/rbac")
    for what, seconds in measured.items():
        logger.info("%s: median %.1f ms", what, seconds * 1000)
    slow = {what: s for what, s in measured.items() if s >= LIMIT}
    assert not slow, slow

    # In the browser: typing a prefix narrows the list without a page load (htmx).
    page.goto(f"{base}/users")
    started = time.perf_counter()
    with page.expect_response(lambda r: f"q={PREFIX}0777" in r.url) as answered:
        page.fill("form.search input[name=q]", f"{PREFIX}0777")
    page.wait_for_selector(f"#user-results a:text('{PREFIX}07779')")
    typed = time.perf_counter() - started
    answer = answered.value
    answer.finished()
    timing = answer.request.timing
    fetch_ms = timing["responseEnd"] - timing["requestStart"]
    logger.info(
        "typed search in the browser: the htmx request answered in %.1f ms; typing to rows "
        "shown %.1f ms (300 ms of it htmx's input delay)",
        fetch_ms,
        typed * 1000,
    )
    assert fetch_ms < LIMIT * 1000
    names = texts(page, "#user-results tbody td:first-child a")
    assert names == [f"{PREFIX}0777{i}" for i in range(10)]
    page.goto(f"{base}/users?q={PREFIX}&after={PREFIX}04999")
    assert texts(page, "#user-results tbody td:first-child a")[0] == f"{PREFIX}05000"
    crowded.shot(page, "page-users-10000")


ROUTES = 1_000
ROUTES_NS = "local/default/gateway-routes"


def test_routes_page_stays_fast_with_1000_routes(console: ConsoleDriver) -> None:
    page = console.admin_page()
    base = console.url
    page.goto(f"{base}/routes")
    create = page.locator("button", has_text="Create it from the route file")
    if create.count():
        create.click()
        page.wait_for_load_state()
    with console.api() as api:
        draft = api.get(f"/api/v1/config/drafts/{ROUTES_NS}").json()
        values = {item["key"]: item["value"] for item in draft["items"]}
        before = api.get(f"/api/v1/config/namespaces/{ROUTES_NS}").json()["current_release"]
        if before is None:  # a first release of the file's table, to come back to
            first = api.post(f"/api/v1/config/releases/{ROUTES_NS}", json={"comment": "file"})
            assert first.status_code == 201, first.text
            before = first.json()
        bulk = [
            {"prefix": f"/api/v1/bulk/r{i:04d}", "service": "sv-log", "access": "public"}
            for i in range(ROUTES)
        ]
        edited = api.patch(
            f"/api/v1/config/drafts/{ROUTES_NS}",
            json={"set": {"routes": {"value": [*values["routes"], *bulk]}}},
        )
        assert edited.status_code == 200, edited.text
        published = api.post(
            f"/api/v1/config/releases/{ROUTES_NS}", json={"comment": "1,000 more routes"}
        )
        assert published.status_code == 201, published.text
    try:
        cookies = {c["name"]: c["value"] for c in page.context.cookies()}
        measured: dict[str, float] = {}
        with httpx.Client(cookies=cookies, timeout=30) as client:
            deadline = time.monotonic() + 15
            while (
                f"{ROUTES + len(values['routes'])} routes" not in client.get(f"{base}/routes").text
            ):
                assert time.monotonic() < deadline, "the 1,000 routes never reached the gateway"
                time.sleep(0.3)
            measured["routes page"], whole = timed(client, f"{base}/routes")
            measured["search"], found = timed(client, f"{base}/routes?q=bulk/r099")
            assert len(re.findall(r"/api/v1/bulk/r099\d</code>", found.text)) == 10
            measured["last page"], last = timed(client, f"{base}/routes?offset=1000")
            assert "<code>" in last.text
        for what, seconds in measured.items():
            logger.info("%d routes, %s: median %.1f ms", ROUTES, what, seconds * 1000)
        logger.info("the routes page is %d bytes (the draft's JSON included)", len(whole.content))
        page.goto(f"{base}/routes?q=bulk")
        console.shot(page, "page-routes-1000")
        slow = {what: s for what, s in measured.items() if s >= LIMIT}
        assert not slow, slow
    finally:
        with console.api() as api:
            back = api.post(
                f"/api/v1/config/releases/{ROUTES_NS}/rollback",
                json={"to": before["number"], "comment": "without the 1,000 routes"},
            )
            assert back.status_code == 201, back.text
