"""edgelib.fastroutes: the precompiled route table answers exactly as FastAPI's router.

Each test builds the same tiny service twice, with the table (``fast_routes=True``, the
default) and without it, sends both the same requests and compares the answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, ClassVar

import httpx
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict

from edgelib.app import create_service_app
from edgelib.deps import CurrentUser, OptionalUser, current_user
from edgelib.identity import Identity
from edgelib.problems import Forbidden
from edgelib.settings import DEV_SERVICE_SECRET, ServiceSettings
from edgelib.signing import ServiceSigner
from tests.helpers import running

ALICE = Identity(
    user_id="u-1", username="alice", region="east", session_id="s-1", client_type="web"
)


class FastSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FAST_", extra="ignore")
    service_name: ClassVar[str] = "tiny"


class Item(BaseModel):
    item_id: int
    name: str
    note: str | None = None


# Dependencies at module level: ``from __future__ import annotations`` leaves FastAPI
# only the module's names to resolve the ``Annotated`` hints with.


def _count(request: Request, name: str) -> None:
    calls: dict[str, int] = request.app.state.calls
    calls[name] = calls.get(name, 0) + 1


async def counted(request: Request) -> str:
    _count(request, "counted")
    return request.url.path


def sync_tag(request: Request, x_tag: Annotated[str, Header(max_length=8)]) -> str:
    _count(request, "sync")
    return x_tag.upper()


async def first(path: Annotated[str, Depends(counted)]) -> str:
    return "first:" + path


async def second(path: Annotated[str, Depends(counted)]) -> str:
    return "second:" + path


async def uncached(path: Annotated[str, Depends(counted, use_cache=False)]) -> str:
    return "uncached:" + path


async def only_alice(user: CurrentUser) -> None:
    if user.username != "alice":
        raise Forbidden("alice only")


async def held() -> AsyncIterator[str]:
    yield "held"


def build(tmp_path: Path, *, fast: bool) -> tuple[FastAPI, dict[str, int]]:
    """The service under test and its per-request dependency call counter."""
    settings = FastSettings(var_dir=tmp_path / ("fast" if fast else "router"), port=7998)
    app = create_service_app(settings, title="tiny", api_prefix="/api/v1/tiny", fast_routes=fast)
    calls: dict[str, int] = {}
    app.state.calls = calls

    @app.get("/api/v1/tiny/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"user_id": user.user_id, "username": user.username}

    @app.get("/api/v1/tiny/maybe")
    async def maybe(user: OptionalUser) -> dict[str, str | None]:
        return {"username": user.username if user else None}

    @app.get("/api/v1/tiny/shadow/{name}")
    async def shadow(name: str, value: Annotated[str, Depends(held)]) -> dict[str, str]:
        return {"route": "shadow-param", "name": name, "value": value}

    @app.get("/api/v1/tiny/shadow/fixed")
    async def shadowed() -> dict[str, str]:
        return {"route": "shadow-fixed"}

    @app.get("/api/v1/tiny/items/{item_id}", response_model_exclude_none=True)
    async def item(
        item_id: Annotated[int, PathParam(ge=1)],
        user: CurrentUser,
        q: Annotated[str | None, Query(max_length=5)] = None,
    ) -> Item:
        return Item(item_id=item_id, name=user.username, note=q)

    @app.get("/api/v1/tiny/items/special")
    async def special() -> dict[str, str]:
        return {"route": "never: /items/{item_id} comes first"}

    @app.get("/api/v1/tiny/items")
    async def items(limit: Annotated[int, Query(ge=1, le=3)] = 2) -> list[Item]:
        return [Item(item_id=n, name=f"n{n}") for n in range(1, limit + 1)]

    @app.get("/api/v1/tiny/dicts", response_model=list[Item])
    async def dicts() -> Any:
        return [{"item_id": 1, "name": "one", "extra": "dropped"}]

    @app.get("/api/v1/tiny/deps", dependencies=[Depends(only_alice)], status_code=202)
    async def deps(
        a: Annotated[str, Depends(first)],
        b: Annotated[str, Depends(second)],
        c: Annotated[str, Depends(uncached)],
        tag: Annotated[str, Depends(sync_tag)],
    ) -> dict[str, str]:
        return {"a": a, "b": b, "c": c, "tag": tag}

    @app.get("/api/v1/tiny/sync")
    def sync_endpoint(n: int = 1) -> dict[str, int]:
        return {"double": 2 * n}

    @app.get("/api/v1/tiny/text")
    async def text() -> PlainTextResponse:
        return PlainTextResponse("plain", headers={"x-own": "1"})

    @app.post("/api/v1/tiny/items", status_code=201)
    async def create(body: Item, user: CurrentUser) -> Item:
        return body

    router = APIRouter(prefix="/inner", dependencies=[Depends(only_alice)], tags=["inner"])

    @router.get("/{name}")
    async def inner(name: Annotated[str, PathParam(max_length=4)]) -> dict[str, str]:
        return {"inner": name}

    app.include_router(router, prefix="/api/v1/tiny")
    return app, calls


def gateway_headers(target: str, *, method: str = "GET", who: Identity = ALICE) -> dict[str, str]:
    signer = ServiceSigner("gateway-api", DEV_SERVICE_SECRET)
    return signer.sign(method, target, None, destination="tiny", identity=who.encode())


BOB = Identity(user_id="u-2", username="bob", region="east", session_id="s-2", client_type="app")

#: (method, target, signed as, extra headers): every case is sent to both apps.
CASES: list[tuple[str, str, Identity | None, dict[str, str]]] = [
    ("GET", "/api/v1/tiny/me", ALICE, {}),
    ("GET", "/api/v1/tiny/me", None, {}),
    ("GET", "/api/v1/tiny/maybe", None, {}),
    ("GET", "/api/v1/tiny/maybe", BOB, {}),
    ("GET", "/api/v1/tiny/shadow/fixed", None, {}),
    ("GET", "/api/v1/tiny/shadow/other", None, {}),
    ("GET", "/api/v1/tiny/items/7", ALICE, {}),
    ("GET", "/api/v1/tiny/items/7?q=abc", ALICE, {}),
    ("GET", "/api/v1/tiny/items/7?q=abcdefgh", ALICE, {}),
    ("GET", "/api/v1/tiny/items/0?q=abcdefgh", None, {}),
    ("GET", "/api/v1/tiny/items/special", ALICE, {}),
    ("GET", "/api/v1/tiny/items", None, {}),
    ("GET", "/api/v1/tiny/items?limit=3", None, {}),
    ("GET", "/api/v1/tiny/items?limit=9", None, {}),
    ("GET", "/api/v1/tiny/items?limit=x", None, {}),
    ("GET", "/api/v1/tiny/dicts", None, {}),
    ("GET", "/api/v1/tiny/deps", ALICE, {"x-tag": "blue"}),
    ("GET", "/api/v1/tiny/deps", ALICE, {"x-tag": "far-too-long"}),
    ("GET", "/api/v1/tiny/deps", ALICE, {}),
    ("GET", "/api/v1/tiny/deps", BOB, {"x-tag": "blue"}),
    ("GET", "/api/v1/tiny/sync?n=21", None, {}),
    ("GET", "/api/v1/tiny/sync?n=half", None, {}),
    ("GET", "/api/v1/tiny/text", None, {}),
    ("GET", "/api/v1/tiny/inner/abc", ALICE, {}),
    ("GET", "/api/v1/tiny/inner/abcdef", ALICE, {}),
    ("GET", "/api/v1/tiny/inner/abc", BOB, {}),
    ("GET", "/api/v1/tiny/about", None, {}),
    ("DELETE", "/api/v1/tiny/me", ALICE, {}),
    ("GET", "/api/v1/tiny/me/", ALICE, {}),
    ("GET", "/healthz", None, {}),
    ("GET", "/nowhere", None, {}),
]


def comparable(response: httpx.Response) -> tuple[int, str, Any, dict[str, str]]:
    """What must be the same: status, type, body (trace ids differ) and the app's headers."""
    kind = response.headers.get("content-type", "")
    body: Any = response.text
    if "json" in kind and response.content:
        body = response.json()
        if isinstance(body, dict):
            body.pop("trace_id", None)
            body.pop("request_id", None)
    skip = {"x-request-id", "traceparent"}
    headers = {k: v for k, v in response.headers.items() if k not in skip}
    return response.status_code, kind, body, headers


@asynccontextmanager
async def both(tmp_path: Path) -> AsyncIterator[tuple[Callable[..., Any], dict[str, Any]]]:
    fast, fast_calls = build(tmp_path, fast=True)
    slow, slow_calls = build(tmp_path, fast=False)
    async with (
        running(fast, raise_app_exceptions=False) as fast_client,
        running(slow, raise_app_exceptions=False) as slow_client,
    ):

        async def send(
            method: str, target: str, who: Identity | None, extra: dict[str, str]
        ) -> tuple[Any, Any]:
            answers = []
            for client in (fast_client, slow_client):
                headers = {**(gateway_headers(target, method=method, who=who) if who else {})}
                headers.update(extra)
                answers.append(comparable(await client.request(method, target, headers=headers)))
            return answers[0], answers[1]

        yield send, {"fast": (fast, fast_calls), "router": (slow, slow_calls)}


async def test_every_case_answers_the_same_with_and_without_the_table(tmp_path: Path) -> None:
    async with both(tmp_path) as (send, _):
        for method, target, who, extra in CASES:
            fast, router = await send(method, target, who, extra)
            assert fast == router, (method, target, who, extra)


async def test_the_table_serves_the_plain_routes_and_leaves_the_rest_to_fastapi(
    tmp_path: Path,
) -> None:
    async with both(tmp_path) as (send, apps):
        await send("GET", "/healthz", None, {})
        app, _ = apps["fast"]
        served = {
            (entry.route.path, tuple(sorted(entry.methods)))
            for entry in app.state.fast_routes.routes
        }
    assert ("/api/v1/tiny/me", ("GET",)) in served
    assert ("/api/v1/tiny/items/{item_id}", ("GET",)) in served
    assert ("/api/v1/tiny/deps", ("GET",)) in served
    assert ("/inner/{name}", ("GET",)) in served  # the route as declared; matched with its prefix
    # A body, and a literal path an earlier route answers.
    assert ("/api/v1/tiny/items", ("POST",)) not in served
    assert ("/api/v1/tiny/shadow/{name}", ("GET",)) in served  # a yield dependency
    assert ("/api/v1/tiny/items/special", ("GET",)) not in served
    assert not hasattr(apps["router"][0].state, "fast_routes")


async def test_dependencies_are_solved_once_per_request_as_fastapi_does(tmp_path: Path) -> None:
    async with both(tmp_path) as (send, apps):
        fast, router = await send("GET", "/api/v1/tiny/deps", ALICE, {"x-tag": "blue"})
        assert fast == router
        assert fast[0] == 202
        assert fast[2] == {
            "a": "first:/api/v1/tiny/deps",
            "b": "second:/api/v1/tiny/deps",
            "c": "uncached:/api/v1/tiny/deps",
            "tag": "BLUE",
        }
        # ``counted`` once cached for first and second, once more for use_cache=False.
        assert apps["fast"][1] == apps["router"][1] == {"counted": 2, "sync": 1}


async def test_dependency_overrides_are_honoured(tmp_path: Path) -> None:
    async with both(tmp_path) as (send, apps):
        for app, _ in apps.values():
            app.dependency_overrides[current_user] = lambda: BOB
        fast, router = await send("GET", "/api/v1/tiny/me", None, {})
    assert fast == router
    assert fast[2] == {"user_id": "u-2", "username": "bob"}


async def test_the_openapi_document_is_the_same(tmp_path: Path) -> None:
    fast, _ = build(tmp_path, fast=True)
    router, _ = build(tmp_path, fast=False)
    assert fast.openapi() == router.openapi()


async def test_metrics_name_the_route_template_when_the_table_answers(tmp_path: Path) -> None:
    app, _ = build(tmp_path, fast=True)
    async with running(app) as client:
        for n in (1, 2):
            target = f"/api/v1/tiny/items/{n}"
            assert (await client.get(target, headers=gateway_headers(target))).status_code == 200
        metrics = (await client.get("/metrics")).text
    assert (
        'edge_http_requests_total{method="GET",route="/api/v1/tiny/items/{item_id}",'
        'service="tiny",status_class="2xx"} 2.0'
    ) in metrics
