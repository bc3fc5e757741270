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

import logging
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

logger = logging.getLogger("edgelib.fastroutes")

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


def _how(call: Any) -> int:
    if _is_gen_callable(call) or _is_async_gen_callable(call):
        return _GENERATOR
    return _AWAIT if _is_coroutine_callable(call) else _THREAD


class _Sub:
    """One sub-dependency of a compiled tree: how to call it and its own solver."""

    __slots__ = ("call", "dependant", "how", "key", "name", "solver", "use_cache")

    def __init__(self, dependant: Dependant, solver: Solver) -> None:
        self.dependant = dependant
        self.name = dependant.name
        self.call: Any = dependant.call
        self.how = _how(dependant.call)
        self.use_cache = dependant.use_cache
        self.key = _get_cache_key(dependant=dependant, uses_scopes_cache={})
        self.solver = solver

    async def value(self, request: Request, cache: dict[Any, Any]) -> tuple[Any, list[Any]]:
        """(the dependency's value, []) or (None, the validation errors below it)."""
        sub_values, sub_errors = await self.solver(request, cache)
        if sub_errors:
            return None, sub_errors
        key = self.key
        if self.use_cache and key in cache:
            solved = cache[key]
        else:
            solved = await self.solve(request, sub_values)
        if key not in cache:
            cache[key] = solved
        return solved, sub_errors

    async def solve(self, request: Request, values: dict[str, Any]) -> Any:
        """The dependency's value, given its own sub-dependencies' ``values``."""
        if self.how == _AWAIT:
            return await self.call(**values)
        if self.how == _THREAD:
            return await run_in_threadpool(self.call, **values)
        # FastAPI's own: the request's stack, or the endpoint's for scope="function".
        function_scope = self.dependant.scope == "function"
        stack = request.scope[
            "fastapi_function_astack" if function_scope else "fastapi_inner_astack"
        ]
        return await _solve_generator(
            dependant=self.dependant, stack=stack, sub_values=values, request=request
        )


def _params(dependant: Dependant) -> list[tuple[list[Any], Callable[[Request], Any]]]:
    """The dependant's parameter fields by source, in ``solve_dependencies``'s order."""
    sources: list[tuple[list[Any], Callable[[Request], Any]]] = [
        (list(dependant.path_params), lambda request: request.path_params),
        (list(dependant.query_params), lambda request: request.query_params),
        (list(dependant.header_params), lambda request: request.headers),
        (list(dependant.cookie_params), lambda request: request.cookies),
    ]
    return [(fields, source) for fields, source in sources if fields]


def _compile_dependant(dependant: Dependant) -> tuple[Solver, bool] | None:
    """``solve_dependencies`` for this one tree and whether it has ``yield`` dependencies
    (which need the request's exit stacks), or None when it has something unusual."""
    if not _plain(dependant):
        return None
    subs: list[_Sub] = []
    generators = False
    for sub in dependant.dependencies:
        if sub.call is None or sub.concurrency is not None:
            return None
        compiled = _compile_dependant(sub)
        if compiled is None:
            return None
        solver, below = compiled
        subs.append(_Sub(sub, solver))
        generators = generators or below or subs[-1].how == _GENERATOR
    params = _params(dependant)
    request_names = [
        name
        for name in (dependant.http_connection_param_name, dependant.request_param_name)
        if name
    ]

    async def solve(request: Request, cache: dict[Any, Any]) -> tuple[dict[str, Any], list[Any]]:
        values: dict[str, Any] = {}
        errors: list[Any] = []
        for sub in subs:
            solved, sub_errors = await sub.value(request, cache)
            if sub_errors:
                errors.extend(sub_errors)
            elif sub.name is not None:
                values[sub.name] = solved
        for fields, source in params:
            found, wrong = request_params_to_args(fields, source(request))
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


def _eligible(route: APIRoute) -> bool:
    """No body, stream, route body limit or custom response class; not a ``yield`` endpoint."""
    call = route.dependant.call
    return not (
        call is None
        or route.body_field is not None
        or route.stream_item_field is not None
        or route.is_sse_stream
        or route.is_json_stream
        or route.max_body_size is not None
        or not isinstance(route.response_class, DefaultPlaceholder)
        or _is_gen_callable(call)
        or _is_async_gen_callable(call)
    )


class _Answer:
    """The endpoint's return value as a response, as ``get_request_handler`` makes it."""

    def __init__(self, route: APIRoute, *, in_thread: bool) -> None:
        self.call = route.dependant.call
        self.path = route.dependant.path
        self.in_thread = in_thread
        self.field = route.response_field
        self.model, self.is_list = _exact_model(route)
        placeholder = route.response_class
        assert isinstance(placeholder, DefaultPlaceholder)  # _eligible
        self.response_class: type[Response] = placeholder.value or JSONResponse
        self.dump: dict[str, Any] = {
            "include": route.response_model_include,
            "exclude": route.response_model_exclude,
            "by_alias": route.response_model_by_alias,
            "exclude_unset": route.response_model_exclude_unset,
            "exclude_defaults": route.response_model_exclude_defaults,
            "exclude_none": route.response_model_exclude_none,
        }
        self.args: dict[str, Any] = {}
        if route.status_code:
            self.args["status_code"] = route.status_code

    def endpoint_context(self, request: Request) -> Any:
        context = _extract_endpoint_context(self.call)
        if self.path:
            mount_path = request.scope.get("root_path", "").rstrip("/")
            context["path"] = f"{request.method} {mount_path}{self.path}"
        return context

    def unchanged(self, raw: Any) -> bool:
        """Whether ``raw`` is exactly the declared model (or a list of it): valid as is."""
        model = self.model
        if model is None:
            return False
        if self.is_list:
            return type(raw) is list and all(type(item) is model for item in raw)
        return type(raw) is model

    async def validated(self, request: Request, raw: Any) -> Any:
        field = self.field
        assert field is not None
        if self.unchanged(raw):
            return raw
        if self.in_thread:
            value, wrong = await run_in_threadpool(field.validate, raw, {}, loc=("response",))
        else:
            value, wrong = field.validate(raw, {}, loc=("response",))
        if wrong:
            raise ResponseValidationError(
                errors=wrong, body=raw, endpoint_ctx=self.endpoint_context(request)
            )
        return value

    async def response(self, request: Request, raw: Any) -> Response:
        if isinstance(raw, Response):
            return raw
        if self.field is not None:
            value = await self.validated(request, raw)
            response = Response(
                content=self.field.serialize_json(value, **self.dump),
                media_type="application/json",
                **self.args,
            )
        else:
            response = self.response_class(jsonable_encoder(raw), **self.args)
        if not is_body_allowed_for_status_code(response.status_code):
            response.body = b""
        return response


def compile_route(route: APIRoute) -> ASGIApp | None:
    """An ASGI app answering ``route`` as FastAPI would, or None when it is not eligible.

    ``route`` is an :class:`APIRoute` or the effective route FastAPI makes of it when
    its router is included (same attributes, prefixes and inherited dependencies applied).
    """
    if not _eligible(route):
        return None
    compiled = _compile_dependant(route.dependant)
    if compiled is None:
        return None
    solve, generators = compiled
    call: Any = route.dependant.call
    is_coroutine = _is_coroutine_callable(call)
    answers = _Answer(route, in_thread=not is_coroutine)

    async def answer(request: Request) -> Response:
        values, errors = await solve(request, {})
        if errors:
            raise RequestValidationError(
                errors, body=None, endpoint_ctx=answers.endpoint_context(request)
            )
        if is_coroutine:
            raw = await call(**values)
        else:
            raw = await run_in_threadpool(call, **values)
        return await answers.response(request, raw)

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

    def _build_or_step_aside(self) -> None:
        try:
            self.build()
        except Exception:
            # A route this module does not understand must not take the service down.
            logger.exception("no fast route table: FastAPI's router answers every request")
            self._literal, self._parametrized, self._regexes = {}, [], []
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
                self._build_or_step_aside()
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
