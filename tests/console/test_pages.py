"""The console's pages on the live stack: each renders with live data, and its actions
work end to end, checked afterwards through the platform's API."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from tests.console.conftest import ConsoleDriver

pytestmark = pytest.mark.e2e


def test_overview_shows_live_figures_and_the_traffic_chart(console: ConsoleDriver) -> None:
    page = console.admin_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
    page.goto(console.url + "/overview")
    assert int(page.inner_text("#fig-services .value")) >= 8
    page.wait_for_selector("#traffic-today .uplot")
    assert int(page.inner_text("#fig-today .value")) > 0
    # htmx and uPlot run under the strict CSP: nothing was refused.
    assert not refused, refused
    console.shot(page, "page-overview")


def test_services_lists_every_pool_and_drains_and_restores_an_instance(
    console: ConsoleDriver,
) -> None:
    page = console.admin_page()
    page.goto(console.url + "/services")
    assert page.locator("section.pool[data-service=sv-user][data-region=east]").count() == 1
    rows = page.locator("section.pool[data-service=sv-user][data-region=east] tbody tr")
    assert rows.count() == 2
    console.shot(page, "page-services")
    victim = rows.first.locator("td").first.inner_text()
    page.once("dialog", lambda d: d.accept())
    rows.first.locator("button", has_text="Drain").click()
    page.wait_for_load_state()
    assert f"{victim} drained" in page.inner_text(".flash.ok")
    cluster = httpx.get(console.stack.admin + "/cluster", timeout=10).json()
    ids = [i["id"] for p in cluster["services"] for i in p["instances"]]
    assert victim not in ids
    page.locator("#drained button", has_text="Restore").click()
    page.wait_for_load_state()
    cluster = httpx.get(console.stack.admin + "/cluster", timeout=10).json()
    assert victim in [i["id"] for p in cluster["services"] for i in p["instances"]]


def _route_exists(console: ConsoleDriver, path: str) -> bool:
    resp = httpx.get(console.stack.public + path, timeout=10)
    # The gateway's own 404 (no route) versus an answer from the routed service.
    return not (resp.status_code == 404 and "no-route" in resp.text)


def test_routes_publish_a_change_and_roll_it_back(console: ConsoleDriver) -> None:
    page = console.admin_page()
    page.goto(console.url + "/routes")
    # The live search (htmx) swaps the list in place.
    page.fill("#route-list input[name=q]", "/api/v1/stats")
    rows = page.locator("#route-list tbody tr")
    deadline = time.monotonic() + 10
    while rows.count() != 1:  # (wait_for_function evaluates a string: the CSP refuses it)
        assert time.monotonic() < deadline, rows.count()
        time.sleep(0.1)
    assert page.url.endswith("q=%2Fapi%2Fv1%2Fstats"), page.url  # hx-push-url
    assert "sv-log" in page.inner_text("#route-list tbody")
    if page.locator("button", has_text="Create it from the route file").count():
        page.locator("button", has_text="Create it from the route file").click()
        page.wait_for_load_state()
    # A first release of the file table, the one to roll back to.
    page.fill("input[name=comment]", "the file table")
    page.click("#publish")
    page.wait_for_load_state()
    assert "published" in page.inner_text(".flash.ok")
    first = int(page.inner_text("#current-release"))
    path = f"/api/v1/console-probe-{uuid.uuid4().hex[:6]}"
    assert not _route_exists(console, path)
    document = json.loads(page.input_value("textarea[name=document]"))
    document["routes"].append({"prefix": path, "service": "sv-log", "access": "public"})
    page.fill("textarea[name=document]", json.dumps(document))
    page.click("text=Save draft")
    page.wait_for_load_state()
    assert path in page.inner_text("#draft-diff")
    console.shot(page, "page-routes")
    page.fill("input[name=comment]", "add the probe route")
    page.click("#publish")
    page.wait_for_load_state()
    second = int(page.inner_text("#current-release"))
    assert second == first + 1
    with console.api() as api:
        ns = api.get("/api/v1/config/namespaces/local/default/gateway-routes").json()
        assert ns["current_release"]["number"] == second
        assert any(r.get("prefix") == path for r in ns["values"]["routes"])
    deadline = time.monotonic() + 10
    while not _route_exists(console, path):
        assert time.monotonic() < deadline, "the published route never reached the gateway"
        time.sleep(0.2)
    page.goto(console.url + "/routes")
    page.once("dialog", lambda d: d.accept())
    page.locator("#releases button", has_text=f"Roll back to {first}").click()
    page.wait_for_load_state()
    assert f"Rolled back to release {first}" in page.inner_text(".flash.ok")
    with console.api() as api:
        ns = api.get("/api/v1/config/namespaces/local/default/gateway-routes").json()
        assert ns["current_release"]["number"] == second + 1
        assert not any(r.get("prefix") == path for r in ns["values"]["routes"])
    deadline = time.monotonic() + 10
    while _route_exists(console, path):
        assert time.monotonic() < deadline, "the rollback never reached the gateway"
        time.sleep(0.2)

    # A gray release to one (absent) gateway instance, then aborted.
    page.fill("input[name=comment]", "try on one gateway")
    page.fill("input[name=gray_instances]", "gateway-canary-1")
    page.click("#publish")
    page.wait_for_load_state()
    assert "Gray release" in page.inner_text(".flash.ok")
    with console.api() as api:
        gray = api.get("/api/v1/config/gray/local/default/gateway-routes")
        assert gray.status_code == 200, gray.text
        assert gray.json()["release"]["targets"]["instances"] == ["gateway-canary-1"]
    page.locator("button", has_text="Abort").click()
    page.wait_for_load_state()
    assert "aborted" in page.inner_text(".flash.ok")
    with console.api() as api:
        assert api.get("/api/v1/config/gray/local/default/gateway-routes").status_code == 404


def test_tenants_create_an_app_with_a_quota(console: ConsoleDriver) -> None:
    tenant = f"ct{uuid.uuid4().hex[:8]}"
    page = console.admin_page()
    page.goto(console.url + "/tenants")
    page.fill("#new-tenant input[name=id]", tenant)
    page.fill("#new-tenant input[name=name]", "Console tenant")
    page.click("#new-tenant button")
    page.wait_for_load_state()
    assert page.url.endswith(f"/tenants/{tenant}")
    page.fill("#new-app input[name=name]", "robot")
    page.fill("#new-app input[name=qps]", "7")
    page.fill("#new-app input[name=qpd]", "7000")
    page.click("#new-app button")
    page.wait_for_load_state()
    shown = page.inner_text(".flash.info")
    assert "shown once" in shown
    page.reload()  # the secret was shown once: gone now
    assert "shown once" not in page.inner_text("main")
    console.shot(page, "page-tenant")
    client_id = page.locator("#app-list tbody tr td a").first.inner_text()
    secret = shown.rsplit(": ", 1)[1].strip()
    with console.api() as api:
        apps = api.get("/api/v1/auth/apps", params={"tenant": tenant}).json()["items"]
        assert [a["client_id"] for a in apps] == [client_id]
        quotas = api.get("/api/v1/quotas", params={"kind": "app", "tenant": tenant}).json()
        (quota,) = quotas["quotas"]
        assert (quota["target"], quota["qps"], quota["qpd"]) == (client_id, 7, 7000)
    # The app's own traffic (its token requests, through the gateway) reaches its chart
    # once the gateway has shipped its statistics to sv-log (every 5 s).
    for _ in range(3):
        resp = httpx.post(
            console.stack.public + "/api/v1/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    for _ in range(5):
        httpx.get(
            console.stack.public + "/api/v1/config/namespaces",
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
        )
    deadline = time.monotonic() + 20
    with console.api() as api:
        while True:
            stats = api.get("/api/v1/stats/today", params={"tenant": tenant, "app": client_id})
            if stats.status_code == 200 and stats.json()["today"]["totals"]["requests"] >= 5:
                break
            assert time.monotonic() < deadline, stats.text
            time.sleep(0.5)
    page.goto(console.url + f"/tenants/{tenant}/apps/{client_id}")
    page.wait_for_selector("#app-traffic .uplot")
    assert "qps 7" in page.inner_text("#quota")
    console.shot(page, "page-app")
    page.goto(console.url + "/tenants")
    assert tenant in page.inner_text("#tenant-list")
    console.shot(page, "page-tenants")
