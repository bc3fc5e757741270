"""The service-to-service client, against httpx.MockTransport."""

from __future__ import annotations

import httpx
import pytest

from edgelib.client import ServiceCallError, ServiceClient
from edgelib.signing import ServiceSigner
from edgelib.tracing import start_span

SECRET = "client-test-secret"


def make_client(
    handler: object, *, urls: list[str] | None = None, retries: int = 2
) -> ServiceClient:
    return ServiceClient(
        urls or ["http://a.test", "http://b.test"],
        signer=ServiceSigner("sv-user", SECRET).to("auth-jwt"),
        retries=retries,
        backoff=0.001,
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
    )


async def test_requests_are_signed_so_the_callee_can_verify_them() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    async with make_client(handler) as client:
        await client.post("/internal/check", json={"u": "x"}, params={"a": "1"})
    request = seen[0]
    verifier = ServiceSigner("auth-jwt", SECRET)
    caller = verifier.verify(
        "POST", request.url.raw_path.decode(), request.headers, request.content
    )
    assert caller == "sv-user"


async def test_idempotent_call_retries_on_another_instance_after_connect_error() -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if len(hosts) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={})

    async with make_client(handler) as client:
        resp = await client.get("/internal/x")
    assert resp.status_code == 200
    assert len(hosts) == 2
    assert hosts[0] != hosts[1]


async def test_non_idempotent_call_is_never_sent_twice() -> None:
    # A read error may come after the callee got (and acted on) the request.
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadError("reset", request=request)

    async with make_client(handler) as client:
        with pytest.raises(ServiceCallError):
            await client.post("/internal/x", json={})
    assert calls == 1


async def test_non_idempotent_call_is_not_repeated_after_a_503() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503)

    async with make_client(handler) as client:
        assert (await client.post("/internal/x", json={})).status_code == 503
    assert calls == 1


async def test_a_post_that_could_not_connect_is_tried_on_another_instance() -> None:
    # Nothing left this machine: the callee never saw the first attempt.
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if len(hosts) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201)

    async with make_client(handler) as client:
        resp = await client.post("/internal/x", json={})
    assert resp.status_code == 201
    assert len(hosts) == 2
    assert hosts[0] != hosts[1]


async def test_a_read_sent_as_post_may_be_declared_idempotent() -> None:
    outcomes = iter(["reset", 503, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        outcome = next(outcomes)
        if outcome == "reset":
            raise httpx.RemoteProtocolError("server disconnected", request=request)
        return httpx.Response(int(outcome))

    async with make_client(handler) as client:
        resp = await client.post("/internal/enforce", json={}, idempotent=True)
    assert resp.status_code == 200


async def test_idempotent_false_keeps_a_put_to_one_attempt() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(502)

    async with make_client(handler) as client:
        assert (await client.put("/x", json={}, idempotent=False)).status_code == 502
    assert calls == 1


async def test_post_with_idempotency_key_may_be_retried() -> None:
    statuses = iter([503, 201])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(statuses))

    async with make_client(handler) as client:
        resp = await client.post("/x", json={}, headers={"Idempotency-Key": "k1"})
    assert resp.status_code == 201


async def test_retries_are_bounded() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503)

    async with make_client(handler, retries=2) as client:
        resp = await client.get("/x")
    assert resp.status_code == 503
    assert calls == 3


async def test_client_error_is_returned_not_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(404)

    async with make_client(handler) as client:
        assert (await client.get("/x")).status_code == 404
    assert calls == 1


async def test_traceparent_of_current_span_is_propagated() -> None:
    # No exporter configured: the current span is a bare (non-recording) one, and still
    # travels on to the peer.
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with make_client(handler) as client:
        with start_span("outer", parent=f"00-{trace_id}-00f067aa0ba902b7-01"):
            await client.get("/x")
    assert seen[0].headers["traceparent"].split("-")[1] == trace_id


async def test_timeouts_raise_service_call_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with make_client(handler, retries=1) as client:
        with pytest.raises(ServiceCallError, match="failed"):
            await client.get("/x")
