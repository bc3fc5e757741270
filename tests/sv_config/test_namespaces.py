"""Namespaces per environment and cluster, their schemas, and draft edits with types."""

from __future__ import annotations

import pytest

from tests.sv_config.conftest import BOB, Caller

DRAFT = "/api/v1/config/drafts/test/default/flags"
LIMITS_SCHEMA = {
    "type": "object",
    "properties": {"limit": {"type": "integer", "maximum": 10}},
    "required": ["limit"],
}


def problem(resp, status: int, slug: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["type"].endswith("/" + slug), body
    return body  # type: ignore[no-any-return]


async def test_namespace_is_per_environment_and_cluster_and_unique(alice: Caller) -> None:
    await alice.namespace("flags", app="sv-user")
    await alice.namespace("flags", cluster="east", app="sv-user")
    await alice.post("/api/v1/config/namespaces", {"name": "flags", "environment": "prod"})
    again = await alice.post("/api/v1/config/namespaces", {"name": "flags", "environment": "test"})
    problem(again, 409, "config-namespace-exists")

    listed = (await alice.get("/api/v1/config/namespaces", environment="test")).json()
    assert [(n["name"], n["cluster"]) for n in listed] == [("flags", "default"), ("flags", "east")]
    by_app = (await alice.get("/api/v1/config/namespaces", app="sv-user")).json()
    assert len(by_app) == 2
    detail = (await alice.get("/api/v1/config/namespaces/test/east/flags")).json()
    assert detail["created_by"] == "alice"
    assert detail["current_release"] is None
    assert detail["values"] == {}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Bad Name", "environment": "test"},
        {"name": "flags", "environment": "staging"},
        {"name": "flags", "environment": "test", "cluster": "East!"},
        {"name": "flags", "environment": "test", "schema": "not an object"},
    ],
)
async def test_bad_namespace_fields_are_refused_with_422(alice: Caller, body: dict) -> None:  # type: ignore[type-arg]
    problem(await alice.post("/api/v1/config/namespaces", body), 422, "validation-error")


async def test_an_invalid_json_schema_is_refused(alice: Caller) -> None:
    bad = {"name": "flags", "environment": "test", "schema": {"type": "nonsense"}}
    body = problem(await alice.post("/api/v1/config/namespaces", bad), 422, "config-invalid-schema")
    assert "type" in body["detail"]
    dangling = {"name": "flags", "environment": "test", "schema": {"$ref": "#/$defs/missing"}}
    problem(await alice.post("/api/v1/config/namespaces", dangling), 422, "config-invalid-schema")
    assert (await alice.get("/api/v1/config/namespaces")).json() == []


async def test_items_are_typed_and_keep_their_type(alice: Caller) -> None:
    await alice.namespace("flags")
    assert (await alice.set("flags", "limit", 5))["type"] == "integer"
    assert (await alice.set("flags", "ratio", 0.5))["type"] == "number"
    assert (await alice.set("flags", "routes", [{"a": 1}]))["type"] == "array"
    assert (await alice.set("flags", "anything", None))["type"] == "json"
    assert (await alice.set("flags", "price", 3, type="number"))["type"] == "number"

    wrong = await alice.put(DRAFT + "/items/limit", {"value": "five"})
    body = problem(wrong, 422, "config-invalid-item")
    assert "integer" in body["detail"]
    problem(
        await alice.put(DRAFT + "/items/enabled", {"value": 1, "type": "boolean"}),
        422,
        "config-invalid-item",
    )
    retyped = await alice.put(DRAFT + "/items/limit", {"value": "five", "type": "string"})
    assert retyped.json()["type"] == "string"

    draft = (await alice.get(DRAFT)).json()
    assert {i["key"]: i["value"] for i in draft["items"]} == {
        "anything": None,
        "limit": "five",
        "price": 3,
        "ratio": 0.5,
        "routes": [{"a": 1}],
    }
    assert set(draft["changes"]["added"]) == {"anything", "limit", "price", "ratio", "routes"}


async def test_batch_edit_is_all_or_nothing(alice: Caller) -> None:
    await alice.namespace("flags")
    await alice.set("flags", "a", 1)
    bad = {"set": {"b": {"value": 2}, "a": {"value": "x", "type": "boolean"}}}
    problem(await alice.patch(DRAFT, bad), 422, "config-invalid-item")
    missing = {"set": {"b": {"value": 2}}, "delete": ["nope"]}
    problem(await alice.patch(DRAFT, missing), 404, "config-item-not-found")
    draft = (await alice.get(DRAFT)).json()
    assert [i["key"] for i in draft["items"]] == ["a"]

    good = await alice.patch(DRAFT, {"set": {"b": {"value": 2}}, "delete": ["a"]})
    assert good.status_code == 200, good.text
    assert [i["key"] for i in good.json()["items"]] == ["b"]


async def test_draft_edits_and_discard_are_audited_with_their_author(alice: Caller) -> None:
    await alice.namespace("flags")
    await alice.set("flags", "a", 1)
    assert (await alice.publish("flags")).status_code == 201
    bob = alice.as_(BOB)
    await bob.set("flags", "a", 2)
    await bob.set("flags", "b", True)
    assert (await bob.delete(DRAFT + "/items/b")).status_code == 204
    problem(await bob.delete(DRAFT + "/items/b"), 404, "config-item-not-found")
    discarded = await bob.delete(DRAFT)
    assert discarded.status_code == 200
    assert discarded.json()["changes"] == {"added": {}, "removed": {}, "changed": {}}
    assert [(i["key"], i["value"]) for i in discarded.json()["items"]] == [("a", 1)]

    audit = (await alice.get("/api/v1/config/audit", namespace="flags")).json()["items"]
    assert [(e["action"], e["actor"]) for e in audit] == [
        ("draft.discarded", "bob"),
        ("item.deleted", "bob"),
        ("item.set", "bob"),
        ("item.set", "bob"),
        ("release.published", "alice"),
        ("item.set", "alice"),
        ("namespace.created", "alice"),
    ]
    assert audit[3]["detail"] == {
        "key": "a",
        "old": {"type": "integer", "value": 1},
        "new": {"type": "integer", "value": 2},
    }
    page = (await alice.get("/api/v1/config/audit", namespace="flags", limit=3)).json()
    older = (
        await alice.get(
            "/api/v1/config/audit", namespace="flags", limit=3, before=page["next_before"]
        )
    ).json()
    assert [e["action"] for e in older["items"]] == ["item.set", "release.published", "item.set"]


async def test_a_schema_the_running_release_breaks_is_refused(alice: Caller) -> None:
    await alice.namespace("flags")
    await alice.set("flags", "limit", 50)
    assert (await alice.publish("flags")).status_code == 201
    ns = "/api/v1/config/namespaces/test/default/flags"
    body = problem(
        await alice.put(ns + "/schema", {"schema": LIMITS_SCHEMA}), 422, "config-schema-violation"
    )
    assert body["violations"] == [
        {"pointer": "/limit", "message": "50 is greater than the maximum of 10"}
    ]
    assert (await alice.get(ns)).json()["schema"] is None

    await alice.set("flags", "limit", 5)
    assert (await alice.publish("flags")).status_code == 201
    assert (await alice.put(ns + "/schema", {"schema": LIMITS_SCHEMA})).status_code == 200
    assert (await alice.get(ns)).json()["schema"] == LIMITS_SCHEMA
    await alice.set("flags", "limit", 11)
    draft = (await alice.get(DRAFT)).json()
    assert draft["schema_violations"][0]["pointer"] == "/limit"
    assert (await alice.put(ns + "/schema", {"schema": None})).json()["schema"] is None


async def test_unknown_namespace_is_404_and_callers_need_an_identity(alice: Caller) -> None:
    problem(await alice.get(DRAFT), 404, "config-namespace-not-found")
    problem(await alice.put(DRAFT + "/items/a", {"value": 1}), 404, "config-namespace-not-found")
    anonymous = await alice.client.get("/api/v1/config/namespaces")
    problem(anonymous, 401, "unauthorized")
    forged = await alice.client.get(
        "/api/v1/config/namespaces", headers={"x-edge-identity": BOB.encode()}
    )
    problem(forged, 401, "unauthorized")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", DRAFT + "/items/bad key", {"value": 1}),
        ("PUT", DRAFT + "/items/a", {"value": 1, "type": "date"}),
        ("PUT", DRAFT + "/items/a", {"type": "string"}),
        ("PATCH", DRAFT, {"set": "nope"}),
        ("GET", "/api/v1/config/drafts/staging/default/flags", None),
        ("GET", "/api/v1/config/audit?limit=0", None),
        ("GET", "/api/v1/config/audit?before=99999999999999", None),
    ],
)
async def test_bad_draft_input_is_a_4xx_problem(
    alice: Caller,
    method: str,
    path: str,
    body: object,
) -> None:
    await alice.namespace("flags")
    resp = await alice.request(method, path, body)
    assert 400 <= resp.status_code < 500, resp.text
    assert resp.headers["content-type"] == "application/problem+json"


async def test_malformed_json_body_is_a_4xx_problem(alice: Caller) -> None:
    await alice.namespace("flags")
    target = DRAFT + "/items/a"
    from tests.sv_config.conftest import ALICE, GATEWAY

    headers = GATEWAY.sign("PUT", target, None, identity=ALICE.encode())
    headers["content-type"] = "application/json"
    resp = await alice.client.put(target, content=b"{not json", headers=headers)
    problem(resp, 422, "validation-error")


async def test_value_and_item_limits(alice: Caller, config_settings) -> None:  # type: ignore[no-untyped-def]
    await alice.namespace("flags")
    big = "x" * (config_settings.max_value_bytes + 1)
    problem(await alice.put(DRAFT + "/items/big", {"value": big}), 422, "config-invalid-item")


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"value": NaN}', "NaN"),
        (b'{"value": [1, -Infinity]}', "NaN"),
        (b'{"value": 123456789012345678901234567890}', "64 bits"),
        (b'{"value": ' + b"[" * 100 + b"]" * 100 + b"}", "deeper"),
        (b'{"value": "a\\u0000b"}', "NUL"),
        (b'{"value": {"k\\u0000": 1}}', "NUL"),
        (b'{"value": "\\ud800"}', "surrogate"),
    ],
)
async def test_values_no_database_can_hold_are_refused_with_422(
    alice: Caller, raw: bytes, says: str
) -> None:
    from tests.sv_config.conftest import ALICE, GATEWAY

    await alice.namespace("flags")
    target = DRAFT + "/items/a"
    headers = GATEWAY.sign("PUT", target, None, identity=ALICE.encode())
    headers["content-type"] = "application/json"
    resp = await alice.client.put(target, content=raw, headers=headers)
    body = problem(resp, 422, "config-invalid-item")
    assert says in body["detail"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "flags", "environment": "test", "description": "a\\u0000"}',
        b'{"name": "flags", "environment": "test", "description": "\\ud800"}',
        b'{"name": "flags", "environment": "test", "app": "x\\u0000"}',
    ],
)
async def test_text_no_database_can_hold_is_refused_with_422(alice: Caller, raw: bytes) -> None:
    from tests.sv_config.conftest import ALICE, GATEWAY

    path = "/api/v1/config/namespaces"
    headers = GATEWAY.sign("POST", path, None, identity=ALICE.encode())
    headers["content-type"] = "application/json"
    problem(await alice.client.post(path, content=raw, headers=headers), 422, "validation-error")


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {"type": "object", "properties": {"x": {"maximum": float("inf")}}},
    ],
)
async def test_schemas_that_cannot_work_are_refused_with_422(alice: Caller, schema: dict) -> None:  # type: ignore[type-arg]
    import json

    path = "/api/v1/config/namespaces"
    from tests.sv_config.conftest import ALICE, GATEWAY

    raw = json.dumps({"name": "flags", "environment": "test", "schema": schema}).encode()
    headers = GATEWAY.sign("POST", path, None, identity=ALICE.encode())
    headers["content-type"] = "application/json"
    problem(
        await alice.client.post(path, content=raw, headers=headers), 422, "config-invalid-schema"
    )


async def test_query_text_no_database_can_hold_is_refused(alice: Caller) -> None:
    for query in ("action=x%00y", "app=a%00b"):
        path = "/api/v1/config/audit" if query.startswith("action") else "/api/v1/config/namespaces"
        resp = await alice.get(f"{path}?{query}")
        problem(resp, 422, "validation-error")
