"""sv-config through the real gateway: edit and publish are separate permissions.

A user whose role grants ``config:edit`` only may change the draft; their publish,
rollback and gray release are refused by the gateway with a 403 problem, and nothing
changes. A release breaking the namespace's schema is refused by sv-config with a 422
problem, and nothing changes either. Authors come from the identity the gateway signs.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.conftest import PORT_SHIFT, Stack

pytestmark = pytest.mark.e2e

AUTH_RBAC = f"http://127.0.0.1:{7103 + PORT_SHIFT}"
PASSWORD = "correct-horse-battery-9"
PROBLEM = "application/problem+json"
SCHEMA = {
    "type": "object",
    "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 100}},
    "required": ["limit"],
}


class User:
    def __init__(self, stack: Stack, client: httpx.Client, username: str, password: str):
        resp = client.post(
            stack.public + "/api/v1/auth/login",
            json={"username": username, "password": password, "client_type": "web"},
        )
        assert resp.status_code == 200, resp.text
        self.token = resp.json()["access_token"]
        payload = self.token.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        self.user_id = str(claims["sub"])
        self.username = username
        self.stack = stack
        self.client = client

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return self.client.request(
            method,
            self.stack.public + path,
            json=body,
            headers={"authorization": f"Bearer {self.token}"},
        )


def register(stack: Stack, client: httpx.Client) -> User:
    username = f"cfg{uuid.uuid4().hex[:10]}"
    resp = client.post(
        stack.public + "/api/v1/users", json={"username": username, "password": PASSWORD}
    )
    assert resp.status_code == 201, resp.text
    return User(stack, client, username, PASSWORD)


def as_admin(stack: Stack, client: httpx.Client) -> User:
    password = (stack.var_dir / "admin-password").read_text().strip()
    admin = User(stack, client, "admin", password)
    # Idempotent; auth-jwt's bootstrap may have made it already.
    body = orjson.dumps({"user": admin.user_id, "role": "admin"})
    headers = {"content-type": "application/json"}
    headers.update(
        stack.signer("auth-jwt").to("auth-rbac").sign("POST", "/internal/assignments", body)
    )
    resp = client.post(AUTH_RBAC + "/internal/assignments", content=body, headers=headers)
    assert resp.status_code in (200, 201), resp.text
    return admin


def eventually(call: Any, status: int, limit: float = 3.0) -> httpx.Response:
    started = time.monotonic()
    while True:
        resp: httpx.Response = call()
        if resp.status_code == status or time.monotonic() - started > limit:
            return resp
        time.sleep(0.05)


def assert_problem(resp: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    doc: dict[str, Any] = resp.json()
    assert doc["type"].endswith("/" + slug), doc
    assert doc["trace_id"]
    return doc


def test_edit_and_publish_are_separate_permissions_at_the_gateway(
    stack: Stack, client: httpx.Client
) -> None:
    admin = as_admin(stack, client)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    draft = f"/api/v1/config/drafts/local/default/{name}"
    releases = f"/api/v1/config/releases/local/default/{name}"
    created = eventually(
        lambda: admin.call(
            "POST",
            "/api/v1/config/namespaces",
            {"name": name, "environment": "local", "app": "e2e", "schema": SCHEMA},
        ),
        201,
    )
    assert created.status_code == 201, created.text
    assert admin.call("PUT", draft + "/items/limit", {"value": 10}).status_code == 200
    first = admin.call("POST", releases, {"comment": "first"})
    assert first.status_code == 201, first.text
    assert (first.json()["number"], first.json()["author"]) == (1, "admin")

    # An editor: a role holding config:edit only.
    editor = register(stack, client)
    role = f"cfg-editor-{uuid.uuid4().hex[:8]}"
    rbac = "/api/v1/rbac"
    assert admin.call("POST", rbac + "/roles", {"name": role}).status_code == 201
    grant = {"sub": role, "obj": "config", "act": "edit"}
    assert admin.call("POST", rbac + "/policies", grant).status_code == 201
    assignment = {"user": editor.user_id, "role": role}
    assert admin.call("POST", rbac + "/assignments", assignment).status_code == 201
    edited = eventually(lambda: editor.call("PUT", draft + "/items/limit", {"value": 20}), 200)
    assert edited.status_code == 200, edited.text
    assert edited.json()["updated_by"] == editor.username

    for path, body in [
        (releases, {"comment": "mine"}),
        (releases + "/rollback", {"to": 1}),
        (f"/api/v1/config/gray/local/default/{name}", {"targets": {"instances": ["x"]}}),
    ]:
        refused = assert_problem(editor.call("POST", path, body), 403, "permission-denied")
        assert refused["permission"] == "config:publish"

    # Nothing changed: release 1 still runs, nothing was released by the editor.
    history = editor.call("GET", releases).json()
    assert ([r["number"] for r in history["items"]], history["current"]) == ([1], 1)
    values = editor.call("GET", f"/api/v1/config/namespaces/local/default/{name}").json()
    assert values["values"] == {"limit": 10}

    # A user without the role may read but not edit.
    plain = register(stack, client)
    assert plain.call("GET", draft).status_code == 200
    denied = assert_problem(
        plain.call("PUT", draft + "/items/limit", {"value": 30}), 403, "permission-denied"
    )
    assert denied["permission"] == "config:edit"
    assert_problem(client.get(stack.public + "/api/v1/config/namespaces"), 401, "unauthorized")

    # The schema refuses a release even from a publisher, and nothing changes.
    assert admin.call("PUT", draft + "/items/limit", {"value": 1000}).status_code == 200
    broken = assert_problem(
        admin.call("POST", releases, {"comment": "too big"}), 422, "config-schema-violation"
    )
    assert broken["violations"] == [
        {"pointer": "/limit", "message": "1000 is greater than the maximum of 100"}
    ]
    assert admin.call("GET", releases).json()["current"] == 1

    assert admin.call("PUT", draft + "/items/limit", {"value": 20}).status_code == 200
    second = admin.call("POST", releases, {"comment": "editor's value"})
    assert second.status_code == 201, second.text
    audit = admin.call("GET", f"/api/v1/config/audit?namespace={name}").json()["items"]
    actors = [(e["action"], e["actor"]) for e in audit]
    assert ("item.set", editor.username) in actors
    assert actors[0] == ("release.published", "admin")
    assert not any(a == "release.published" and who != "admin" for a, who in actors)
