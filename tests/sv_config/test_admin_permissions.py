"""sv-config checks config:edit and config:publish itself, on the gateway-signed identity."""

from __future__ import annotations

from tests.sv_config.conftest import CAROL, Caller


async def test_a_reader_cannot_edit_or_publish_even_when_routed_here(alice: Caller) -> None:
    await alice.namespace("flags")
    await alice.set("flags", "mode", "one")
    carol = alice.as_(CAROL)
    # Reads need a login only.
    assert (await carol.get("/api/v1/config/namespaces")).status_code == 200
    for method, path, body, permission in (
        ("POST", "/api/v1/config/namespaces", {"name": "x", "environment": "test"}, "config:edit"),
        ("PUT", "/api/v1/config/drafts/test/default/flags/items/mode", {"value": 2}, "config:edit"),
        ("POST", "/api/v1/config/releases/test/default/flags", {"comment": ""}, "config:publish"),
    ):
        resp = await carol.request(method, path, body)
        assert resp.status_code == 403, (path, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert permission in resp.json()["detail"]
    # Nothing she sent took effect: the draft still holds Alice's value, unpublished.
    assert (await alice.publish("flags")).status_code == 201
