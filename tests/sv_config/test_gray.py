"""Gray release: only the chosen instances get it; promote and abort; main line waits."""

from __future__ import annotations

from typing import Any

from tests.sv_config.conftest import Caller, watch
from tests.sv_config.test_namespaces import problem

GRAY = "/api/v1/config/gray/test/default/flags"
RELEASES = "/api/v1/config/releases/test/default/flags"


async def seen_by(alice: Caller, instance: str, **who: Any) -> tuple[int, bool, dict[str, Any]]:
    """(release number, gray?, values) the instance would run now."""
    resp = await watch(alice.client, [{"name": "flags"}], instance=instance, **who)
    change = resp.json()["changes"][0]
    return change["release"], change["gray"], change["values"]


async def published(alice: Caller) -> None:
    await alice.namespace("flags")
    await alice.set("flags", "mode", "old")
    assert (await alice.publish("flags")).status_code == 201
    await alice.set("flags", "mode", "new")


async def test_gray_reaches_only_the_chosen_instance_then_promote(alice: Caller) -> None:
    await published(alice)
    started = await alice.post(GRAY, {"targets": {"instances": ["svc-a"]}, "comment": "try"})
    assert started.status_code == 201, started.text
    assert started.json()["release"]["number"] == 2
    assert started.json()["release"]["kind"] == "gray"
    assert started.json()["base_release"] == 1

    assert await seen_by(alice, "svc-a") == (2, True, {"mode": "new"})
    assert await seen_by(alice, "svc-b") == (1, False, {"mode": "old"})
    detail = (await alice.get("/api/v1/config/namespaces/test/default/flags")).json()
    assert detail["current_release"]["number"] == 1
    assert detail["gray_release"]["number"] == 2
    assert detail["values"] == {"mode": "old"}

    # While the gray runs, the main line waits for it.
    await alice.set("flags", "mode", "newer")
    problem(await alice.publish("flags"), 409, "config-gray-in-progress")
    problem(await alice.post(RELEASES + "/rollback", {"to": 1}), 409, "config-gray-in-progress")
    problem(
        await alice.post(GRAY, {"targets": {"regions": ["east"]}}), 409, "config-gray-in-progress"
    )

    promoted = await alice.post(GRAY + "/promote", {"comment": "looks good"})
    assert promoted.status_code == 201, promoted.text
    assert (promoted.json()["number"], promoted.json()["kind"]) == (3, "promote")
    assert promoted.json()["source_number"] == 2
    assert promoted.json()["values"] == {"mode": "new"}  # the gray content, not the newer draft
    assert await seen_by(alice, "svc-a") == (3, False, {"mode": "new"})
    assert await seen_by(alice, "svc-b") == (3, False, {"mode": "new"})
    problem(await alice.get(GRAY), 404, "config-no-gray-release")
    problem(await alice.post(GRAY + "/promote", {}), 404, "config-no-gray-release")


async def test_abort_returns_gray_instances_to_the_current_release(alice: Caller) -> None:
    await published(alice)
    await alice.post(GRAY, {"targets": {"instances": ["svc-a"]}})
    assert (await seen_by(alice, "svc-a"))[2] == {"mode": "new"}
    aborted = await alice.post(GRAY + "/abort", {"comment": "wrong"})
    assert aborted.status_code == 200, aborted.text
    assert aborted.json()["number"] == 2
    assert await seen_by(alice, "svc-a") == (1, False, {"mode": "old"})
    history = (await alice.get(RELEASES)).json()
    assert (history["current"], history["gray"]) == (1, None)
    # A gray release never ran for everyone: it cannot be "restored".
    problem(await alice.post(RELEASES + "/rollback", {"to": 2}), 409, "config-not-rollbackable")
    actions = [e["action"] for e in (await alice.get("/api/v1/config/audit")).json()["items"]]
    assert actions[:2] == ["gray.aborted", "gray.started"]


async def test_gray_targets_by_region_or_by_every_label(alice: Caller) -> None:
    await published(alice)
    targets = {"regions": ["west"], "labels": {"canary": "yes", "tier": "2"}}
    assert (await alice.post(GRAY, {"targets": targets})).status_code == 201
    assert (await seen_by(alice, "w1", region="west"))[1] is True
    assert (await seen_by(alice, "e1", region="east"))[1] is False
    both = {"canary": "yes", "tier": "2", "zone": "a"}
    assert (await seen_by(alice, "e2", region="east", labels=both))[1] is True
    one = {"canary": "yes"}
    assert (await seen_by(alice, "e3", region="east", labels=one))[1] is False

    wider = await alice.put(GRAY + "/targets", {"targets": {"regions": ["east", "west"]}})
    assert wider.status_code == 200
    assert (await seen_by(alice, "e1", region="east"))[1] is True


async def test_gray_needs_targets_and_a_changed_draft(alice: Caller) -> None:
    await published(alice)
    problem(await alice.post(GRAY, {"targets": {}}), 422, "config-invalid-targets")
    problem(await alice.post(GRAY, {"targets": {"hosts": ["x"]}}), 422, "validation-error")
    await alice.delete("/api/v1/config/drafts/test/default/flags")
    problem(
        await alice.post(GRAY, {"targets": {"instances": ["a"]}}), 409, "config-nothing-to-publish"
    )


async def test_a_gray_release_breaking_the_schema_is_refused(alice: Caller) -> None:
    schema = {"type": "object", "properties": {"mode": {"enum": ["old", "new"]}}}
    await alice.namespace("flags", schema=schema)
    await alice.set("flags", "mode", "old")
    await alice.publish("flags")
    await alice.set("flags", "mode", "weird")
    body = problem(
        await alice.post(GRAY, {"targets": {"instances": ["a"]}}), 422, "config-schema-violation"
    )
    assert body["violations"][0]["pointer"] == "/mode"
    problem(await alice.get(GRAY), 404, "config-no-gray-release")
    assert (await seen_by(alice, "a"))[0] == 1
