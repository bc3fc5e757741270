"""A schema's references resolve inside the document: sv-config never fetches a URL (SSRF)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from edgelib.app import default_database_url
from sv_config.config import Settings
from sv_config.content import check_schema, violations
from sv_config.exceptions import InvalidSchema
from tests.sv_config.conftest import Caller
from tests.sv_config.test_namespaces import problem
from tests.worker import free_port

NAMESPACES = "/api/v1/config/namespaces"
NS = "/api/v1/config/namespaces/test/default/flags"


@dataclass
class Listener:
    """A real HTTP server on loopback that answers a schema and remembers every connection."""

    port: int
    connections: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    found = Listener(free_port())

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        found.connections.append(await reader.read(4096))
        body = b'{"type": "object"}'
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", found.port)
    try:
        yield found
    finally:
        server.close()
        await server.wait_closed()


def _remote_schemas(url: str) -> list[dict]:  # type: ignore[type-arg]
    return [
        {"$ref": f"{url}/x.json"},
        {"type": "object", "properties": {"limit": {"$ref": f"{url}/limit.json"}}},
        # A branch the empty document never reaches is found all the same.
        {"anyOf": [{"type": "object"}, {"$ref": f"{url}/y.json"}]},
        # A relative reference against a remote base URI is a remote reference too.
        {"$id": f"{url}/root.json", "properties": {"a": {"$ref": "other.json"}}},
        {"$schema": "http://json-schema.org/draft-07/schema#", "$ref": f"{url}/d7.json"},
        {"$dynamicRef": f"{url}/dyn.json#meta"},
        {"properties": {"a": {"$ref": "file:///etc/passwd"}}},
    ]


async def test_a_remote_ref_is_refused_with_422_and_never_fetched(
    alice: Caller, listener: Listener
) -> None:
    for schema in _remote_schemas(listener.url):
        body = {"name": "flags", "environment": "test", "schema": schema}
        refused = problem(await alice.post(NAMESPACES, body), 422, "config-invalid-schema")
        assert "never fetched" in refused["detail"], refused
    assert (await alice.get(NS)).status_code == 404
    await alice.namespace()
    for schema in _remote_schemas(listener.url):
        problem(await alice.put(NS + "/schema", {"schema": schema}), 422, "config-invalid-schema")
    assert (await alice.get(NS)).json()["schema"] is None
    await asyncio.sleep(0.1)
    assert listener.connections == []


async def test_references_inside_the_document_still_resolve(alice: Caller) -> None:
    schema = {
        "$id": "https://schemas.example/flags.json",
        "$defs": {
            "limit": {"type": "integer", "maximum": 10},
            "named": {"$id": "https://schemas.example/named.json", "type": "string"},
            "anchored": {"$anchor": "flag", "type": "boolean"},
        },
        "type": "object",
        "properties": {
            "limit": {"$ref": "#/$defs/limit"},
            "name": {"$ref": "named.json"},
            "on": {"$ref": "#flag"},
            # A property named "$ref" and a constant holding one are data, not references.
            "$ref": {"const": {"$ref": "http://127.0.0.1:9/never"}},
        },
    }
    ns = await alice.namespace(schema=schema)
    assert ns["schema"] == schema
    await alice.set("flags", "limit", 11)
    refused = problem(await alice.publish("flags"), 422, "config-schema-violation")
    assert refused["violations"][0]["pointer"] == "/limit"
    await alice.set("flags", "limit", 3)
    await alice.set("flags", "name", "x")
    assert (await alice.publish("flags")).status_code == 201


async def test_a_stored_remote_ref_fails_publish_with_422_and_is_not_fetched(
    alice: Caller, config_settings: Settings, listener: Listener
) -> None:
    await alice.namespace()
    await alice.set("flags", "limit", 3)
    # A schema stored before references were checked: put it in place behind the API's back.
    stored = f'{{"anyOf": [{{"type": "string"}}, {{"$ref": "{listener.url}/late.json"}}]}}'
    url = config_settings.database_url or default_database_url(config_settings)
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        if config_settings.database_schema:
            await conn.execute(text(f'SET search_path TO "{config_settings.database_schema}"'))
        await conn.execute(text("UPDATE namespaces SET json_schema = :s"), {"s": stored})
    await engine.dispose()
    problem(await alice.publish("flags"), 422, "config-invalid-schema")
    assert (await alice.get("/api/v1/config/releases/test/default/flags")).json()["items"] == []
    await asyncio.sleep(0.1)
    assert listener.connections == []


async def test_validation_never_retrieves_even_without_the_upload_check(listener: Listener) -> None:
    schema = {"anyOf": [{"type": "string"}, {"$ref": f"{listener.url}/branch.json"}]}
    with pytest.raises(InvalidSchema):
        violations(schema, {"a": 1})
    with pytest.raises(InvalidSchema):
        check_schema({"$ref": f"{listener.url}/x.json"}, max_bytes=65536)
    assert listener.connections == []
