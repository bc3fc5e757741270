"""A precompiled route table in front of FastAPI's router, for the usual service endpoint.

FastAPI finds a route by walking every route (and every included router, nested) for each
request, then solves the endpoint's dependency tree with the general
``solve_dependencies`` (override lookups, a response object, exit stacks, an ``isinstance``
per parameter kind) and validates the answer again before writing it. For a small
authenticated read that is more than twice the work of the endpoint itself
(doc/performance.md, "Service request stack").

:class:`FastRouteTable` sits where the router's own middleware goes (inside FastAPI's
exception and exit-stack middleware, so every handler, problem document, access line,
metric and trace id is the same). On the first request it looks at every route once:

- a route is *eligible* when its endpoint and every dependency below it take only the
  request, path, query, header and cookie parameters, or other such dependencies: the
  platform's ``CurrentUser``, ``OptionalUser``, ``InternalCaller``,
  ``RequirePermission``, ``SessionDep`` and the services' ``provided(...)`` are. A
  body, a ``Response``/``BackgroundTasks``/security scopes parameter, a dependency
  concurrency limit, a custom response class or a streamed answer leave the route to
  FastAPI;
- for an eligible route it compiles what ``solve_dependencies`` would do for that tree,
  in the same order, with the same caching per request, FastAPI's own parameter
  validation (``request_params_to_args``, so 422 documents are word for word the same),
  threads for plain ``def`` functions, and FastAPI's own ``_solve_generator`` with the
  two exit stacks of ``request_response`` for ``yield`` dependencies;
- the answer is validated and written as FastAPI's default JSON path does (one
  ``dump_json`` through pydantic-core), except that a returned instance of exactly the
  declared model (or a list of them) is not validated again: for a model that does not
  revalidate instances, pydantic would hand back the same object.

A request is served from the table only when its route is the one FastAPI's router would
pick: the first route in order that fully matches the path and method. That is decided
once per literal path when the table is built, and for a path with parameters by the
routes' own expressions, in order, on each request that one of the table's expressions
matches. Anything else (no match, 405, redirects, a ``root_path``, FastAPI telemetry,
``dependency_overrides`` in force, WebSockets) goes to FastAPI's router unchanged, and
the OpenAPI document is untouched: the routes themselves are not changed.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

from fastapi import FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import (
    Dependant,
    _get_cache_key,
    _is_async_gen_callable,
    _is_coroutine_callable,
    _is_gen_callable,
)
from fastapi.dependencies.utils import _solve_generator, request_params_to_args
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import FastAPIError, RequestValidationError, ResponseValidationError
from fastapi.routing import APIRoute, _extract_endpoint_context, _iter_routes_with_context
from fastapi.utils import is_body_allowed_for_status_code
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["FastRouteTable", "compile_route", "install_fast_routes"]

#: ``(values, errors)`` of one dependant for one request, given the request's cache.
Solver = Callable[[Request, dict[Any, Any]], Awaitable[tuple[dict[str, Any], list[Any]]]]


def _plain(dependant: Dependant) -> bool:
    """Whether ``dependant`` asks only for what the compiled solver provides."""
    return not (
        dependant.body_params
        or dependant.websocket_param_name
        or dependant.background_tasks_param_name
        or dependant.response_param_name
        or dependant.security_scopes_param_name
    )


#: How a dependency is called: awaited, in a thread, or entered as a context (``yield``).
_AWAIT, _THREAD, _GENERATOR = 0, 1, 2


def _compile_dependant(dependant: Dependant) -> tuple[Solver, bool] | None:
    """``solve_dependencies`` for this one tree and whether it has ``yield`` dependencies
    (which need the request's exit stacks), or None when it has something unusual."""
    if not _plain(dependant):
        return None
    subs: list[tuple[str | None, Any, int, bool, Any, Solver, Dependant]] = []
    generators = False
    for sub in dependant.dependencies:
        call = sub.call
        if call is None or sub.concurrency is not None:
            return None
        compiled = _compile_dependant(sub)
        if compiled is None:
            return None
        solver, below = compiled
        if _is_gen_callable(call) or _is_async_gen_callable(call):
            how = _GENERATOR
        elif _is_coroutine_callable(call):
            how = _AWAIT
        else:
            how = _THREAD
        generators = generators or below or how == _GENERATOR
        key = _get_cache_key(dependant=sub, uses_scopes_cache={})
        subs.append((sub.name, call, how, sub.use_cache, key, solver, sub))
    path_params = list(dependant.path_params)
    query_params = list(dependant.query_params)
    header_params = list(dependant.header_params)
    cookie_params = list(dependant.cookie_params)
    request_names = [
        name
        for name in (dependant.http_connection_param_name, dependant.request_param_name)
        if name
    ]

    async def solve(request: Request, cache: dict[Any, Any]) -> tuple[dict[str, Any], list[Any]]:
        values: dict[str, Any] = {}
        errors: list[Any] = []
        for name, call, how, use_cache, key, solver, sub in subs:
            sub_values, sub_errors = await solver(request, cache)
            if sub_errors:
                errors.extend(sub_errors)
                continue
            if use_cache and key in cache:
                solved = cache[key]
            elif how == _AWAIT:
                solved = await call(**sub_values)
            elif how == _THREAD:
                solved = await run_in_threadpool(call, **sub_values)
            else:
                # FastAPI's own: the request's stack, or the endpoint's for scope="function".
                stack = request.scope[
                    "fastapi_function_astack" if sub.scope == "function" else "fastapi_inner_astack"
                ]
                solved = await _solve_generator(
                    dependant=sub, stack=stack, sub_values=sub_values, request=request
                )
            if name is not None:
                values[name] = solved
            if key not in cache:
                cache[key] = solved
        if path_params:
            found, wrong = request_params_to_args(path_params, request.path_params)
            values.update(found)
            errors += wrong
        if query_params:
            found, wrong = request_params_to_args(query_params, request.query_params)
            values.update(found)
            errors += wrong
        if header_params:
            found, wrong = request_params_to_args(header_params, request.headers)
            values.update(found)
            errors += wrong
        if cookie_params:
            found, wrong = request_params_to_args(cookie_params, request.cookies)
            values.update(found)
            errors += wrong
        for name in request_names:
            values[name] = request
        return values, errors

    return solve, generators


def _exact_model(route: APIRoute) -> tuple[type[BaseModel] | None, bool]:
    """(model, is_list) when the declared answer is a model or ``list`` of one whose
    instances pydantic passes through unvalidated; (None, False) otherwise."""
    field = route.response_field
    if field is None or field.field_info.metadata:
        return None, False
    annotation = field.field_info.annotation
    is_list = typing.get_origin(annotation) is list
    if is_list:
        (annotation,) = typing.get_args(annotation) or (None,)
    if (
        isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
        and annotation.model_config.get("revalidate_instances", "never") == "never"
    ):
        return annotation, is_list
    return None, False


def _stock_route(route: BaseRoute) -> bool:
    """An :class:`APIRoute` whose matching and handling are FastAPI's own (a subclass
    overriding them, from a ``route_class``, is left to FastAPI)."""
    kind = type(route)
    return isinstance(route, APIRoute) and all(
        getattr(kind, name) is getattr(APIRoute, name)
        for name in ("get_route_handler", "matches", "handle")
    )


def compile_route(route: APIRoute) -> ASGIApp | None:
    """An ASGI app answering ``route`` as FastAPI would, or None when it is not eligible.

    ``route`` is an :class:`APIRoute` or the effective route FastAPI makes of it when
    its router is included (same attributes, prefixes and inherited dependencies applied).
    """
    dependant = route.dependant
    call = dependant.call
    if (
        call is None
        or route.body_field is not None
        or route.stream_item_field is not None
        or route.is_sse_stream
        or route.is_json_stream
        or route.max_body_size is not None
        or not isinstance(route.response_class, DefaultPlaceholder)
        or _is_gen_callable(call)
        or _is_async_gen_callable(call)
    ):
        return None
    compiled = _compile_dependant(dependant)
    if compiled is None:
        return None
    solve, generators = compiled
    is_coroutine = _is_coroutine_callable(call)
    response_class: type[Response] = route.response_class.value or JSONResponse
    field = route.response_field
    model, is_list = _exact_model(route)
    dump = {
        "include": route.response_model_include,
        "exclude": route.response_model_exclude,
        "by_alias": route.response_model_by_alias,
        "exclude_unset": route.response_model_exclude_unset,
        "exclude_defaults": route.response_model_exclude_defaults,
        "exclude_none": route.response_model_exclude_none,
    }
    response_args: dict[str, Any] = {}
    if route.status_code:
        response_args["status_code"] = route.status_code
    endpoint_path = dependant.path

    def endpoint_context(request: Request) -> Any:
        context = _extract_endpoint_context(call)
        if endpoint_path:
            mount_path = request.scope.get("root_path", "").rstrip("/")
            context["path"] = f"{request.method} {mount_path}{endpoint_path}"
        return context

    def unchanged(raw: Any) -> bool:
        if model is None:
            return False
        if is_list:
            return type(raw) is list and all(type(item) is model for item in raw)
        return type(raw) is model

    async def answer(request: Request) -> Response:
        values, errors = await solve(request, {})
        if errors:
            raise RequestValidationError(errors, body=None, endpoint_ctx=endpoint_context(request))
        if is_coroutine:
            raw = await call(**values)
        else:
            raw = await run_in_threadpool(call, **values)
        if isinstance(raw, Response):
            response = raw
        else:
            if field is not None:
                if unchanged(raw):
                    value = raw
                else:
                    if is_coroutine:
                        value, wrong = field.validate(raw, {}, loc=("response",))
                    else:
                        value, wrong = await run_in_threadpool(
                            field.validate, raw, {}, loc=("response",)
                        )
                    if wrong:
                        raise ResponseValidationError(
                            errors=wrong, body=raw, endpoint_ctx=endpoint_context(request)
                        )
                response = Response(
                    content=field.serialize_json(value, **dump),
                    media_type="application/json",
                    **response_args,
                )
            else:
                response = response_class(jsonable_encoder(raw), **response_args)
            if not is_body_allowed_for_status_code(response.status_code):
                response.body = b""
        return response

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await answer(Request(scope, receive, send))
        await response(scope, receive, send)

    async def app_with_stacks(scope: Scope, receive: Receive, send: Send) -> None:
        # fastapi.routing.request_response: ``yield`` dependencies of the default scope
        # end after the answer is sent, those of scope="function" before it is.
        request = Request(scope, receive, send)
        response_awaited = False
        async with AsyncExitStack() as request_stack:
            scope["fastapi_inner_astack"] = request_stack
            async with AsyncExitStack() as function_stack:
                scope["fastapi_function_astack"] = function_stack
                response = await answer(request)
            await response(scope, receive, send)
            response_awaited = True
        if not response_awaited:
            raise FastAPIError(
                "Response not awaited: a dependency with yield has a bare except or "
                "except Exception that does not raise the exception again."
            )

    return app_with_stacks if generators else app


class _Entry:
    """One route the table answers: what FastAPI's router would put in the scope."""

    __slots__ = ("app", "convertors", "endpoint", "index", "methods", "regex", "route")

    def __init__(self, index: int, route: Any, effective: Any, app: ASGIApp) -> None:
        self.index = index
        self.route = route  # what FastAPI puts in scope["route"]: the original APIRoute
        self.endpoint = effective.endpoint
        self.methods: set[str] | None = effective.methods
        self.regex = effective.path_regex
        self.convertors = effective.param_convertors
        self.app = app


class FastRouteTable:
    """The router's innermost middleware: answers eligible routes from a precompiled table
    (module docstring), passes everything else to FastAPI's router."""

    def __init__(self, app: ASGIApp, *, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._built = False
        #: (method, literal path) -> the entry FastAPI's router would pick.
        self._literal: dict[tuple[str, str], _Entry] = {}
        #: Eligible routes with parameters, in the router's order.
        self._parametrized: list[_Entry] = []
        #: Every route before the last parametrized entry: (regex, methods), in order.
        self._regexes: list[tuple[Any, set[str] | None]] = []

    @property
    def routes(self) -> list[_Entry]:
        """The entries served from the table (tests and the benchmark look)."""
        return [*dict.fromkeys([*self._literal.values(), *self._parametrized])]

    def build(self) -> None:
        """Look at every route once (on the first request: all routes are added by then)."""
        flat: list[tuple[BaseRoute, Any]] = []
        for original, context in _iter_routes_with_context(self.fastapi_app.router.routes):
            # An included route is matched through its effective context (prefixes and
            # inherited dependencies applied); a route of the app itself, directly.
            effective = original if context is None else context
            if getattr(effective, "path_regex", None) is None and context is not None:
                effective = context.starlette_route or context
            if getattr(effective, "path_regex", None) is None:
                # A host route or anything else matching on more than the path: the
                # routes from here on are left to FastAPI's router.
                break
            flat.append((original, effective))
        candidates: list[_Entry] = []
        for index, (original, effective) in enumerate(flat):
            if not _stock_route(original):
                continue
            app = compile_route(effective)
            if app is not None:
                candidates.append(_Entry(index, original, effective, app))
        for entry in candidates:
            if entry.convertors:
                self._parametrized.append(entry)
                continue
            path = flat[entry.index][1].path_format
            for method in entry.methods or ():
                if self._first_full(flat, path, method) == entry.index:
                    self._literal[(method, path)] = entry
        if self._parametrized:
            last = self._parametrized[-1].index
            self._regexes = [
                (getattr(effective, "path_regex", None), getattr(effective, "methods", None))
                for _, effective in flat[:last]
            ]
        self._built = True

    @staticmethod
    def _first_full(flat: Sequence[tuple[BaseRoute, Any]], path: str, method: str) -> int:
        scope = {
            "type": "http",
            "path": path,
            "root_path": "",
            "method": method,
            "headers": [],
            "query_string": b"",
            "path_params": {},
        }
        for index, (_, effective) in enumerate(flat):
            match, _ = effective.matches(scope)
            if match == Match.FULL:
                return index
        return -1

    def _parametrized_entry(self, path: str, method: str) -> tuple[_Entry, dict[str, Any]] | None:
        for entry in self._parametrized:
            if entry.methods is not None and method not in entry.methods:
                continue
            found = entry.regex.match(path)
            if found is None:
                continue
            for regex, methods in self._regexes[: entry.index]:
                if regex is None:
                    return None
                if regex.match(path) and (methods is None or method in methods):
                    return None  # an earlier route answers: FastAPI's router decides
            params = {
                name: entry.convertors[name].convert(value)
                for name, value in found.groupdict().items()
            }
            return entry, params
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and not scope.get("root_path")
            and "fastapi.telemetry" not in scope
            and not self.fastapi_app.dependency_overrides
        ):
            if not self._built:
                self.build()
            method: str = scope["method"]
            path: str = scope["path"]
            entry = self._literal.get((method, path))
            params: dict[str, Any] = {}
            if entry is None and self._parametrized:
                found = self._parametrized_entry(path, method)
                if found is not None:
                    entry, params = found
            if entry is not None:
                if "router" not in scope:
                    scope["router"] = self.fastapi_app.router
                path_params = dict(scope.get("path_params", {}))
                path_params.update(params)
                scope["endpoint"] = entry.endpoint
                scope["path_params"] = path_params
                scope["route"] = entry.route
                await entry.app(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_fast_routes(app: FastAPI) -> FastRouteTable:
    """Put a :class:`FastRouteTable` in front of ``app``'s router (the routes stay as they are)."""
    table = FastRouteTable(app.router.middleware_stack, fastapi_app=app)
    app.router.middleware_stack = table
    app.state.fast_routes = table
    return table
