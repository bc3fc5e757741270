"""The Users, RBAC, Regions, Config, Logs, Notices and Wallet pages, in a real Chromium
on the running stack: each shows live data, and their actions reach the platform
(checked afterwards through its API)."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from playwright.sync_api import Page

from tests.console.conftest import ConsoleDriver, api_login, texts
from tests.console.receiver import HookReceiver
from tests.e2e.accounts import PASSWORD

pytestmark = pytest.mark.e2e


def eventually(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.1) -> Any:
    """``check()``'s first truthy answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(every)


#: What each page's browser console logged as errors (a CSP refusal shows there).
BROWSER_ERRORS: dict[int, list[str]] = {}


def signed_in(console: ConsoleDriver) -> Page:
    """The admin's page, confirming the console's 'are you sure?' prompts (data-confirm
    forms) and keeping what the browser logs as errors."""
    page = console.admin_page()
    errors = BROWSER_ERRORS.setdefault(id(page), [])
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    return page


def no_errors(page: Page) -> None:
    """No error message on the page, and none in the browser's console."""
    shown = texts(page, ".flash.error")
    assert shown == [], shown
    logged = BROWSER_ERRORS.get(id(page), [])
    assert logged == [], logged


def test_users_page_finds_a_user_and_shows_region_and_sessions(console: ConsoleDriver) -> None:
    name, _ = console.register("cu")
    api_login(console.stack, name)
    page = signed_in(console)
    page.goto(f"{console.url}/users?q={name[:6]}")
    no_errors(page)
    row = page.locator("#user-results tr", has_text=name)
    assert row.locator("td").nth(1).inner_text() == "east"
    console.shot(page, "page-users")
    no_errors(page)
    row.locator("a").click()
    page.wait_for_load_state()
    assert page.inner_text("h1") == name
    assert page.inner_text("#home-region") == "east"
    sessions = page.locator("#sessions tbody tr")
    assert sessions.count() == 1
    assert "app" in sessions.first.inner_text()
    assert "user" in page.inner_text("#roles")
    no_errors(page)
    console.shot(page, "page-users-user")
    no_errors(page)


def test_revoking_a_session_in_the_console_ends_it_in_the_platform(
    console: ConsoleDriver,
) -> None:
    name, uid = console.register("cr")
    victim = api_login(console.stack, name)
    sid = jwt.decode(victim["authorization"][7:], options={"verify_signature": False})["sid"]
    me = console.stack.public + "/api/v1/users/me"
    assert httpx.get(me, headers=victim, timeout=10).status_code == 200

    page = signed_in(console)
    page.goto(f"{console.url}/users/{uid}")
    page.locator(f"tr[data-session='{sid}'] button", has_text="Revoke").click()
    page.wait_for_load_state()
    assert f"Session {sid} ended." in texts(page, ".flash.ok")
    assert page.locator(f"tr[data-session='{sid}']").count() == 0

    with console.api() as api:
        listed = api.get(f"/api/v1/auth/users/{uid}/sessions").json()["items"]
    assert sid not in [s["id"] for s in listed]
    # The gateways refuse the session's access token within a second or so.
    refused = eventually(
        lambda: httpx.get(me, headers=victim, timeout=10).status_code == 401, timeout=5
    )
    assert refused, "the revoked session's token still works"


def test_a_change_without_the_csrf_token_is_refused_on_these_pages(
    console: ConsoleDriver,
) -> None:
    page = signed_in(console)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    for path in (
        "/users/x/sessions/y/revoke",
        "/notices/dead-letters/d1/replay",
        "/rbac/roles",
        "/regions/rules",
    ):
        resp = httpx.post(console.url + path, cookies=cookies, data={"name": "x"}, timeout=10)
        assert resp.status_code == 403, (path, resp.status_code)
        assert "CSRF" in resp.text


def test_rbac_page_shows_roles_and_manages_a_role(console: ConsoleDriver) -> None:
    name, uid = console.register("cb")
    role = f"r{uuid.uuid4().hex[:8]}"
    page = signed_in(console)
    page.goto(f"{console.url}/rbac")
    no_errors(page)
    roles = page.inner_text("#roles")
    for builtin in ("admin", "operator", "user"):
        assert builtin in roles
    assert "sessions:revoke" in roles
    console.shot(page, "page-rbac")
    no_errors(page)

    page.fill("input[name=name]", role)
    page.fill("input[name=description]", "made by the console test")
    page.click("text=Create role")
    page.wait_for_load_state()
    assert f"Role {role} created in default." in texts(page, ".flash.ok")
    page.fill("input[name=obj]", "logs")
    page.fill("input[name=act]", "read")
    page.click("button:text('Grant')")
    page.wait_for_load_state()
    page.fill("input[name=user]", name)
    page.click("button:text('Assign')")
    page.wait_for_load_state()
    no_errors(page)
    assert uid in page.inner_text("#members")
    console.shot(page, "page-rbac-role")
    no_errors(page)

    with console.api() as api:
        found = api.get(f"/api/v1/rbac/roles/{role}").json()
        assert found["permissions"] == [{"obj": "logs", "act": "read"}]
        assert found["members"] == [uid]
        held = api.get(f"/api/v1/rbac/users/{uid}/roles").json()["roles"]
        assert role in held

    page.goto(f"{console.url}/rbac/user?who={name}")
    assert "logs" in page.inner_text("#user-permissions")
    assert role in page.inner_text("#user-roles")


def test_regions_page_shows_regions_rules_dry_run_and_lookup(console: ConsoleDriver) -> None:
    name, _ = console.register("cg")
    prefix = f"+99{secrets.randbelow(10**5):05d}"
    page = signed_in(console)
    page.goto(f"{console.url}/regions")
    no_errors(page)
    assert page.locator("#region-list tr[data-region=east]").count() == 1
    assert page.locator("#region-list tr[data-region=west]").count() == 1

    page.select_option("select[name=kind]", "phone_prefix")
    page.fill("input[name=match]", prefix)
    page.select_option("#rules select[name=region]", "west")
    page.click("text=Add rule")
    page.wait_for_load_state()
    no_errors(page)
    assert prefix in page.inner_text("#rules")
    with console.api() as api:
        rules = api.get("/api/v1/regions/rules").json()
    [rule] = [r for r in rules if r["match"] == prefix]
    assert rule["region"] == "west"

    page.goto(f"{console.url}/regions?username=newcomer&phone={prefix}1234&lookup={name}")
    assert "west" in page.inner_text("#assignment-result")
    assert "east" in page.locator("#lookup tr", has_text=name).inner_text()
    console.shot(page, "page-regions")
    no_errors(page)

    page.locator("#rules tr", has_text=prefix).locator("button").click()
    page.wait_for_load_state()
    with console.api() as api:
        assert prefix not in [r["match"] for r in api.get("/api/v1/regions/rules").json()]


def test_config_page_shows_namespaces_releases_and_a_diff(console: ConsoleDriver) -> None:
    ns = f"cfg{uuid.uuid4().hex[:6]}"
    path = f"local/default/{ns}"
    with console.api() as api:
        made = api.post(
            "/api/v1/config/namespaces",
            json={"name": ns, "environment": "local", "app": "console-test"},
        )
        assert made.status_code == 201, made.text
        for limit in (10, 20):
            put = api.put(f"/api/v1/config/drafts/{path}/items/limit", json={"value": limit})
            assert put.status_code == 200, put.text
            published = api.post(f"/api/v1/config/releases/{path}", json={"comment": f"{limit}"})
            assert published.status_code == 201, published.text
    page = signed_in(console)
    page.goto(f"{console.url}/config?q={ns}")
    no_errors(page)
    page.locator("#namespaces a", has_text=ns).click()
    page.wait_for_load_state()
    assert page.locator("#releases tbody tr").count() == 2
    assert "20" in page.inner_text("#values")
    console.shot(page, "page-config-namespace")
    no_errors(page)
    page.click("#releases a:text('#2')")
    page.wait_for_load_state()
    diff = page.inner_text("#diff")
    assert "- limit = 10" in diff
    assert "+ limit = 20" in diff
    page.goto(f"{console.url}/config")
    no_errors(page)
    console.shot(page, "page-config")
    no_errors(page)


def test_logs_page_queries_by_trace_id_and_tails_live(console: ConsoleDriver) -> None:
    trace = secrets.token_hex(16)
    header = {"traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"}
    public = console.stack.public
    assert httpx.get(public + "/api/v1/regions/about", headers=header).status_code == 200
    with console.api() as api:
        shipped = eventually(
            lambda: api.get("/api/v1/logs/records", params={"trace_id": trace}).json()["items"],
            timeout=20,
            every=0.5,
        )
    assert shipped, "the request's log records never reached sv-log"
    page = signed_in(console)
    page.goto(f"{console.url}/logs?trace_id={trace}")
    no_errors(page)
    # The gateway's line at least; sv-region's own may have arrived meanwhile.
    shown = page.inner_text("#log-results")
    assert page.locator("#log-results tbody tr").count() >= len(shipped)
    assert "gateway-api" in shown
    assert "/api/v1/regions/about" in shown
    console.shot(page, "page-logs")
    no_errors(page)

    page.goto(f"{console.url}/logs?trace_id=not-a-trace")
    assert "32 hexadecimal digits" in page.inner_text(".flash.error")

    page.goto(f"{console.url}/logs/live?service=gateway-api")
    page.wait_for_selector("#tail-state")
    live = secrets.token_hex(16)
    httpx.get(
        public + "/api/v1/regions/about",
        headers={"traceparent": f"00-{live}-{secrets.token_hex(8)}-01"},
    )
    page.wait_for_selector(f"#tail a[href$='{live}']", timeout=30_000)
    assert "Live since" in page.inner_text("#tail-state")
    console.shot(page, "page-logs-live")
    no_errors(page)


def test_notices_page_replays_a_dead_letter(console: ConsoleDriver) -> None:
    name, uid = console.register("cn")
    user = api_login(console.stack, name)
    public = console.stack.public
    with HookReceiver(status=410) as receiver:
        hooked = httpx.put(
            public + "/api/v1/notices/preferences/webhook",
            json={"url": receiver.url},
            headers=user,
            timeout=10,
        )
        assert hooked.status_code == 200, hooked.text
        with console.api() as api:
            sent = api.post(
                "/api/v1/notices/admin/send",
                json={
                    "user_id": uid,
                    "category": "general",
                    "variables": {"title": "Console", "body": "replay me"},
                    "channels": ["webhook"],
                },
            )
            assert sent.status_code == 202, sent.text
            [delivery] = [d for d in sent.json()["deliveries"] if d["channel"] == "webhook"]

            def dead() -> bool:
                got = api.get(f"/api/v1/notices/admin/deliveries/{delivery['id']}").json()
                return bool(got["status"] == "failed")

            assert eventually(dead, timeout=15), "the webhook was never dead-lettered"
        page = signed_in(console)
        page.goto(f"{console.url}/notices?channel=webhook")
        no_errors(page)
        row = page.locator(f"tr[data-delivery='{delivery['id']}']")
        assert "410" in row.inner_text()
        console.shot(page, "page-notices")
        no_errors(page)

        receiver.status = 200
        row.locator("button", has_text="Replay").click()
        page.wait_for_load_state()
        assert f"Delivery {delivery['id']} queued again." in texts(page, ".flash.ok")

        with console.api() as api:

            def sent_now() -> Any:
                got = api.get(f"/api/v1/notices/admin/deliveries/{delivery['id']}").json()
                return got if got["status"] == "sent" else None

            done = eventually(sent_now, timeout=15)
        assert done, "the replayed delivery was not sent"
        assert done["attempts"] == 1
        assert [status for status in receiver.statuses] == [410, 200]


def test_wallet_page_shows_each_regions_audit(console: ConsoleDriver) -> None:
    page = signed_in(console)
    page.goto(f"{console.url}/wallet")
    no_errors(page)
    for region in ("east", "west"):
        row = page.locator(f"#audits tr[data-region={region}]")
        assert "clean" in row.inner_text(), row.inner_text()
    with console.api() as api:
        east = api.get("/api/v1/wallet/audit", params={"region": "east"}).json()
    assert east["ok"] is True
    console.shot(page, "page-wallet")
    no_errors(page)


def test_an_operator_reads_these_pages_without_their_actions(console: ConsoleDriver) -> None:
    username, _ = console.register("cop", role="operator")
    target, target_id = console.register("cot")
    session = jwt.decode(
        api_login(console.stack, target)["authorization"][7:], options={"verify_signature": False}
    )["sid"]
    page = console.sign_in(username, PASSWORD)
    # Granted to operator: the directory and sessions (regions:read, sessions:read), the
    # wallet audit (wallet:audit); not: ending a session, nor the dead letters.
    page.goto(f"{console.url}/users/{target_id}")
    assert page.locator(f"tr[data-session='{session}']").count() == 1
    assert page.locator("#sessions button").count() == 0
    page.goto(f"{console.url}/wallet")
    assert "clean" in page.inner_text("#audits tr[data-region=east]")
    resp = page.goto(f"{console.url}/notices")
    assert resp is not None
    assert resp.status == 200
    assert "notices:admin" in page.inner_text("#dead-letters .flash.error")
    page.goto(f"{console.url}/regions")
    assert page.locator("#rules button, #region-list button").count() == 0
    csrf = page.locator("header form input[name=csrf]").input_value()
    forged = page.request.post(
        f"{console.url}/users/{target_id}/sessions/{session}/revoke", form={"csrf": csrf}
    )
    assert forged.status == 403
    assert "console:admin" in forged.text()
    with console.api() as api:
        live = api.get(f"/api/v1/auth/users/{target_id}/sessions").json()["items"]
    assert session in [s["id"] for s in live]
