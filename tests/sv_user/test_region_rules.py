"""Registration without a region follows sv-region's assignment rules (phone, network)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.identity_harness import as_gateway, identity_stack


async def test_phone_and_network_rules_place_new_users(tmp_path: Path) -> None:
    async with identity_stack(tmp_path) as stack:
        admin = await stack.admin_identity()
        for rule in (
            {"kind": "phone_prefix", "match": "+44", "region": "west"},
            {"kind": "network", "match": "198.51.100.0/24", "region": "east"},
        ):
            content = json.dumps(rule).encode()
            headers = as_gateway("POST", "/api/v1/regions/rules", admin)
            headers["content-type"] = "application/json"
            resp = await stack.region.post(
                "/api/v1/regions/rules", content=content, headers=headers
            )
            assert resp.status_code == 201, resp.text
        by_phone = await stack.users("east").post(
            "/api/v1/users",
            json={
                "username": "londoner",
                "password": "correct horse 1",
                "phone": "+44 7700 900123",
            },
        )
        assert by_phone.status_code == 201, by_phone.text
        assert by_phone.json()["region"] == "west"
        by_network = await stack.users("west").post(
            "/api/v1/users",
            json={"username": "officer", "password": "correct horse 1"},
            headers={"x-forwarded-for": "203.0.113.1, 198.51.100.7"},
        )
        assert by_network.status_code == 201, by_network.text
        assert by_network.json()["region"] == "east"
        bad = await stack.users("east").post(
            "/api/v1/users",
            json={"username": "nophone", "password": "correct horse 1", "phone": "12345"},
        )
        assert bad.status_code == 422
