"""Schemathesis against every service's OpenAPI document, through the gateway.

Each service's own ``/openapi.json`` (fetched from the running instance) drives
generated requests sent to the gateway of a real stack on PostgreSQL and Redis, once
with an admin's token and once with a plain user's. Every answer must be below 500,
every error ``application/problem+json``, and every body must match its documented
schema. The operations the gateway does not route (``/internal/...``, signed calls
between services) and the two event streams are left out; :data:`EXCLUDED` says why.
The run prints what it covered: operations per service and examples sent.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
import requests
import schemathesis
from schemathesis import BaseSchema, Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e import accounts
from tests.e2e.conftest import PORT_SHIFT, OwnServersStack, Stack

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

#: Generated examples per operation and caller (the schema's own examples come on top);
#: EDGE_FUZZ_EXAMPLES asks for more (a longer hunt: 10 took 20 min on a 2-core machine
#: loaded by other test runs).
MAX_EXAMPLES = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "5"))

#: One instance of each service (the east one of a regional service), for its document.
#: sv-region goes last: the regions and assignment rules it is fed decide where new
#: users land, and a registration sent to a made-up region is rightly a 503.
SERVICES = {
    "auth-jwt": 7102,
    "auth-rbac": 7103,
    "sv-config": 7104,
    "sv-log": 7105,
    "sv-user": 7201,
    "sv-money": 7211,
    "sv-notice": 7221,
    "sv-region": 7101,
}
#: Operations left out, with the reason.
EXCLUDED = {
    r"^/internal/": "signed service-to-service calls; the gateway refuses /internal",
    r"^/api/v1/logs/tail$": "an endless event stream (sv-log's own tests cover it)",
    r"^/api/v1/notices/stream$": "an endless event stream (sv-notice's own tests cover it)",
}
#: Operations that end the caller's session: each example gets a session of its own.
SESSION_ENDING = frozenset({("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/logout-all")})


#: The stack under test, for :func:`server_errors_with_their_traceback`.
_LOG_DIR: list[Path] = []


def server_errors_with_their_traceback(
    ctx: CheckContext, response: Response, case: Case
) -> bool | None:
    """No answer is a 5xx; the failure quotes the service's log lines of its trace id."""
    if response.status_code >= 500:
        try:
            trace_id = str(orjson.loads(response.content).get("trace_id", ""))
        except (orjson.JSONDecodeError, AttributeError):
            trace_id = ""
        logged = [
            f"{path.name}: {line[-1500:]}"
            for directory in _LOG_DIR
            for path in sorted(directory.glob("*.log"))
            for line in path.read_text(errors="replace").splitlines()
            if trace_id and trace_id in line and '"level":"error"' in line
        ]
        raise AssertionError(
            f"{response.status_code} for {case.method} {case.formatted_path}\n"
            + "\n".join(logged[-3:])
        )
    return None


#: The OAuth2 token endpoint answers its own errors as RFC 6749 §5.2 JSON
#: (``{"error": "invalid_client"}``), so that standard OAuth2 clients understand them;
#: anything the gateway or a limit answers there is still problem+json.
OAUTH2_ENDPOINTS = frozenset({("POST", "/api/v1/auth/token")})
OAUTH2_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)


def problem_json_errors(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx and 5xx answer is an RFC 9457 problem document (or, from the OAuth2 token
    endpoint, an RFC 6749 error)."""
    if response.status_code >= 400:
        media_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
        if (case.method.upper(), case.path) in OAUTH2_ENDPOINTS and media_type == (
            "application/json"
        ):
            body = orjson.loads(response.content)
            assert response.status_code in (400, 401), response.status_code
            assert body.get("error") in OAUTH2_ERRORS, body
            return None
        assert media_type == "application/problem+json", (
            f"{response.status_code} answered as {media_type or 'no content type'}"
        )
        body = orjson.loads(response.content)
        assert isinstance(body, dict), body
        assert body.get("status") == response.status_code, body
    return None


CHECKS = [
    server_errors_with_their_traceback,
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    problem_json_errors,
]


@dataclass
class Caller:
    role: str
    username: str
    password: str
    headers: dict[str, str]


@dataclass
class Tally:
    """What the run covered, printed at the end of the module."""

    examples: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    operations: dict[str, set[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, service: str, role: str, case: Case, status: int) -> None:
        with self.lock:
            self.examples[f"{service}/{role}"] += 1
            self.statuses[status] += 1
            self.operations.setdefault(service, set()).add(case.operation.label)

    def report(self) -> str:
        lines = ["schemathesis through the gateway:"]
        for service in SERVICES:
            ops = sorted(self.operations.get(service, ()))
            runs = {role: self.examples[f"{service}/{role}"] for role in ("admin", "user")}
            lines.append(f"  {service}: {len(ops)} operations, examples {runs}")
            lines += [f"    {op}" for op in ops]
        total = sum(self.examples.values())
        server_errors = sum(n for status, n in self.statuses.items() if status >= 500)
        lines.append(
            f"  total: {sum(len(o) for o in self.operations.values())} operations, {total} "
            f"examples, statuses {dict(sorted(self.statuses.items()))}, "
            f"server errors {server_errors}"
        )
        return "\n".join(lines)


@pytest.fixture(scope="module")
def fuzz_stack(own_servers_stack: OwnServersStack) -> Iterator[tuple[Stack, Tally]]:
    """The stack on a PostgreSQL and a Redis of its own (conftest): the generated data
    (roles, regions, namespaces...) reaches no other test file's stack."""
    stack = own_servers_stack.stack
    tally = Tally()
    _LOG_DIR.append(stack.var_dir / "log")
    try:
        yield stack, tally
        print("\n" + tally.report())  # noqa: T201 - the coverage is the point
    finally:
        _LOG_DIR.clear()


@pytest.fixture(scope="module")
def callers(fuzz_stack: tuple[Stack, Tally]) -> dict[str, Caller]:
    stack, _ = fuzz_stack
    username, user = accounts.register(stack, "east", "fuzz")
    return {
        "admin": Caller("admin", "admin", accounts.admin_password(stack), accounts.admin(stack)),
        "user": Caller("user", username, accounts.PASSWORD, user),
    }


@dataclass
class Target:
    service: str
    caller: Caller
    stack: Stack
    tally: Tally
    session: requests.Session


@pytest.fixture(
    params=[(service, role) for service in SERVICES for role in ("admin", "user")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def fuzz_target(
    request: pytest.FixtureRequest,
    fuzz_stack: tuple[Stack, Tally],
    callers: dict[str, Caller],
) -> Iterator[Target]:
    service, role = request.param
    stack, tally = fuzz_stack
    known = callers[role]
    # A fresh session for each service: access tokens expire, and fuzzing auth-jwt rotates
    # its keys and may end sessions.
    caller = Caller(
        role, known.username, known.password, accounts.login(stack, known.username, known.password)
    )
    with requests.Session() as session:
        yield Target(service, caller, stack, tally, session)


@pytest.fixture
def service_schema(fuzz_target: Target) -> BaseSchema:
    """The service's own document, as its running instance serves it, aimed at the gateway."""
    port = SERVICES[fuzz_target.service] + PORT_SHIFT
    doc = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10).json()
    # Dropped from the document itself: the lazy schema of schemathesis 4.32 re-applies
    # only its own filters, so ``schema.exclude()`` here would be lost.
    doc["paths"] = {
        path: item
        for path, item in doc["paths"].items()
        if not any(re.search(pattern, path) for pattern in EXCLUDED)
    }
    schema = schemathesis.openapi.from_dict(doc)
    schema.config.update(base_url=fuzz_target.stack.public, request_timeout=15)
    schema.config.generation.update(max_examples=MAX_EXAMPLES)
    schema.config.phases.update(phases=["examples", "fuzzing"])
    return schema


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy schema reads ``node._nodeid``, which pytest 9.2 renamed;
    # it only uses it to name the sub-tests in reports.
    request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("service_schema")


@schema.parametrize()
def test_every_answer_through_the_gateway_is_below_500_problem_json_and_as_documented(
    case: Case, fuzz_target: Target
) -> None:
    caller = fuzz_target.caller
    headers = dict(caller.headers)
    if (case.method.upper(), case.path) in SESSION_ENDING:
        # A session of another client type, so the caller's own (web) one lives on.
        headers = accounts.login(fuzz_target.stack, caller.username, caller.password, "app")
    response = case.call(session=fuzz_target.session, headers=headers)
    fuzz_target.tally.add(fuzz_target.service, caller.role, case, response.status_code)
    case.validate_response(response, checks=CHECKS, headers=headers)
