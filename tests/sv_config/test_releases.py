"""Publishing, immutable numbered releases, schema refusals, rollback and diff."""

from __future__ import annotations

from typing import Any

import httpx

from tests.sv_config.conftest import BOB, Caller, watch
from tests.sv_config.test_namespaces import problem

RELEASES = "/api/v1/config/releases/test/default/flags"
NESTED = {"routes": [{"prefix": "/a", "retries": 2, "weights": [1.5, 0]}], "on": True}


async def running_values(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await watch(client, [{"name": "flags"}])
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["changes"][0]["values"])


async def test_publish_makes_numbered_releases_with_author_and_comment(alice: Caller) -> None:
    await alice.namespace("flags")
    await alice.set("flags", "limit", 5)
    first = await alice.publish("flags", "start small")
    assert first.status_code == 201, first.text
    assert first.json()["number"] == 1
    await alice.set("flags", "limit", 7)
    second = await alice.as_(BOB).publish("flags", "a bit more")
    assert second.json()["number"] == 2
    assert (second.json()["author"], second.json()["author_id"]) == ("bob", "u-bob")
    assert second.json()["comment"] == "a bit more"

    history = (await alice.get(RELEASES)).json()
    assert [r["number"] for r in history["items"]] == [2, 1]
    assert history["current"] == 2
    one = (await alice.get(RELEASES + "/1")).json()
    assert one["values"] == {"limit": 5}
    assert one["author"] == "alice"
    assert await running_values(alice.client) == {"limit": 7}


async def test_publishing_an_unchanged_draft_is_refused(alice: Caller) -> None:
    await alice.namespace("flags")
    await alice.set("flags", "limit", 5)
    assert (await alice.publish("flags")).status_code == 201
    problem(await alice.publish("flags"), 409, "config-nothing-to-publish")
    await alice.set("flags", "limit", 5.0, type="number")  # same number, other type: a change
    assert (await alice.publish("flags")).status_code == 201


async def test_a_release_breaking_the_schema_is_refused_and_nothing_changes(
    alice: Caller,
) -> None:
    schema = {
        "type": "object",
        "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 10}},
        "required": ["limit"],
        "additionalProperties": False,
    }
    await alice.namespace("flags", schema=schema)
    await alice.set("flags", "limit", 5)
    assert (await alice.publish("flags")).status_code == 201
    before_audit = (await alice.get("/api/v1/config/audit")).json()["items"]

    await alice.set("flags", "limit", 50)
    await alice.set("flags", "extra", "x")
    refused = problem(await alice.publish("flags", "too far"), 422, "config-schema-violation")
    assert refused["detail"].startswith("the draft breaks the namespace's schema")
    assert {v["pointer"] for v in refused["violations"]} == {"/", "/limit"}
    assert "trace_id" in refused

    history = (await alice.get(RELEASES)).json()
    assert [r["number"] for r in history["items"]] == [1]
    assert await running_values(alice.client) == {"limit": 5}
    after_audit = (await alice.get("/api/v1/config/audit")).json()["items"]
    assert after_audit[2:] == before_audit  # only the two edits were added

    missing = await alice.patch(
        "/api/v1/config/drafts/test/default/flags", {"delete": ["limit", "extra"]}
    )
    assert missing.status_code == 200
    problem(await alice.publish("flags"), 422, "config-schema-violation")


async def test_rollback_restores_an_earlier_release_exactly(alice: Caller) -> None:
    await alice.namespace("flags")
    await alice.patch(
        "/api/v1/config/drafts/test/default/flags",
        {"set": {k: {"value": v} for k, v in NESTED.items()}},
    )
    await alice.set("flags", "ratio", 1, type="number")
    one = (await alice.publish("flags", "good")).json()
    await alice.patch(
        "/api/v1/config/drafts/test/default/flags",
        {"set": {"on": {"value": False}, "new": {"value": "x"}}, "delete": ["routes"]},
    )
    assert (await alice.publish("flags", "bad")).status_code == 201
    assert await running_values(alice.client) == {"on": False, "new": "x", "ratio": 1}

    back = await alice.as_(BOB).post(RELEASES + "/rollback", {"to": 1, "comment": "undo"})
    assert back.status_code == 201, back.text
    restored = back.json()
    assert (restored["number"], restored["kind"], restored["source_number"]) == (3, "rollback", 1)
    assert restored["content"] == one["content"]
    assert restored["author"] == "bob"
    assert await running_values(alice.client) == {**NESTED, "ratio": 1}
    again = await alice.post(RELEASES + "/rollback", {"to": 1})
    problem(again, 409, "config-nothing-to-publish")
    problem(await alice.post(RELEASES + "/rollback", {"to": 9}), 404, "config-release-not-found")

    # The draft is left alone, as in Apollo: it still holds the edits of release 2.
    draft = (await alice.get("/api/v1/config/drafts/test/default/flags")).json()
    assert draft["base_release"] == 3
    assert set(draft["changes"]["added"]) == {"new"}

    audit = (await alice.get("/api/v1/config/audit", action="release.rolled_back")).json()
    assert audit["items"][0]["detail"] == {
        "restored": 1,
        "replaced": 2,
        "comment": "undo",
    }


async def test_rollback_is_refused_when_the_old_release_breaks_todays_schema(
    alice: Caller,
) -> None:
    await alice.namespace("flags")
    await alice.set("flags", "limit", 50)
    await alice.publish("flags")
    await alice.set("flags", "limit", 5)
    await alice.publish("flags")
    schema = {"type": "object", "properties": {"limit": {"maximum": 10}}}
    ns = "/api/v1/config/namespaces/test/default/flags/schema"
    assert (await alice.put(ns, {"schema": schema})).status_code == 200
    body = problem(
        await alice.post(RELEASES + "/rollback", {"to": 1}), 422, "config-schema-violation"
    )
    assert "release 1" in body["detail"]
    assert (await alice.get(RELEASES)).json()["current"] == 2


async def test_diff_between_any_two_releases(alice: Caller) -> None:
    await alice.namespace("flags")
    await alice.patch(
        "/api/v1/config/drafts/test/default/flags",
        {"set": {"a": {"value": 1}, "b": {"value": "x"}, "c": {"value": True}}},
    )
    await alice.publish("flags")
    await alice.patch(
        "/api/v1/config/drafts/test/default/flags",
        {"set": {"a": {"value": 2}, "d": {"value": [1]}}, "delete": ["b"]},
    )
    await alice.publish("flags")
    await alice.set("flags", "c", 1, type="integer")
    await alice.publish("flags")
    change = (await alice.get(RELEASES + "/diff", **{"from": 1, "to": 3})).json()
    assert change["added"] == {"d": {"type": "array", "value": [1]}}
    assert change["removed"] == {"b": {"type": "string", "value": "x"}}
    assert change["changed"] == {
        "a": {"from": {"type": "integer", "value": 1}, "to": {"type": "integer", "value": 2}},
        "c": {"from": {"type": "boolean", "value": True}, "to": {"type": "integer", "value": 1}},
    }
    back = (await alice.get(RELEASES + "/diff", **{"from": 3, "to": 1})).json()
    assert set(back["added"]) == {"b"}
    problem(
        await alice.get(RELEASES + "/diff", **{"from": 1, "to": 7}), 404, "config-release-not-found"
    )
    bad = await alice.get(RELEASES + "/diff", **{"from": "x", "to": 1})
    problem(bad, 422, "validation-error")


async def test_history_pages_back(alice: Caller) -> None:
    await alice.namespace("flags")
    for n in range(5):
        await alice.set("flags", "n", n)
        await alice.publish("flags")
    page = (await alice.get(RELEASES, limit=2)).json()
    assert [r["number"] for r in page["items"]] == [5, 4]
    page = (await alice.get(RELEASES, limit=2, before=page["next_before"])).json()
    assert [r["number"] for r in page["items"]] == [3, 2]
    problem(await alice.get(RELEASES + "/99999999999"), 422, "validation-error")
