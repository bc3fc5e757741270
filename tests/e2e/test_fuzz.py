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

import base64
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

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

from edgelib.settings import DEV_SERVICE_SECRET
from edgelib.signing import ServiceSigner
from tests.e2e.conftest import PORT_SHIFT, Stack, Stacks
from tests.e2e.servers import OwnPostgres, OwnRedis

pytestmark = pytest.mark.e2e

FLAVOUR = "fuzz"
#: Examples per operation and caller. 10 keeps the whole run (about 110 operations,
#: two callers) near a minute on 2 cores.
MAX_EXAMPLES = 10
PASSWORD = "correct-horse-battery-9"

#: One instance of each service (the east one of a regional service), for its document.
SERVICES = {
    "sv-region": 7101,
    "auth-jwt": 7102,
    "auth-rbac": 7103,
    "sv-config": 7104,
    "sv-log": 7105,
    "sv-user": 7201,
    "sv-money": 7211,
    "sv-notice": 7221,
}
#: Operations left out, with the reason.
EXCLUDED = {
    r"^/internal/": "signed service-to-service calls; the gateway refuses /internal",
    r"^/api/v1/logs/tail$": "an endless event stream (sv-log's own tests cover it)",
    r"^/api/v1/notices/stream$": "an endless event stream (sv-notice's own tests cover it)",
}
#: Operations that end the caller's session: each example gets a session of its own.
SESSION_ENDING = frozenset({("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/logout-all")})
AUTH_JWT = ServiceSigner("auth-jwt", DEV_SERVICE_SECRET)
AUTH_RBAC = f"http://127.0.0.1:{7103 + PORT_SHIFT}"


def problem_json_errors(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx and 5xx answer is an RFC 9457 problem document."""
    if response.status_code >= 400:
        media_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
        assert media_type == "application/problem+json", (
            f"{response.status_code} answered as {media_type or 'no content type'}"
        )
        body = orjson.loads(response.content)
        assert isinstance(body, dict) and body.get("status") == response.status_code, body
    return None


CHECKS = [
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


def _login(stack: Stack, username: str, password: str, client_type: str) -> dict[str, str]:
    resp = httpx.post(
        stack.public + "/api/v1/auth/login",
        json={"username": username, "password": password, "client_type": client_type},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return {"authorization": f"Bearer {resp.json()['access_token']}"}


def _grant_admin(stack: Stack, headers: dict[str, str]) -> None:
    payload = headers["authorization"].split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body = orjson.dumps({"user": claims["sub"], "role": "admin"})
    signed = {"content-type": "application/json"} | AUTH_JWT.sign(
        "POST", "/internal/assignments", body
    )
    granted = httpx.post(AUTH_RBAC + "/internal/assignments", content=body, headers=signed)
    assert granted.status_code in (200, 201), granted.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        probe = httpx.get(stack.public + "/api/v1/wallet/audit", headers=headers)
        if probe.status_code != 403:
            return
        time.sleep(0.05)
    raise AssertionError("the admin role did not take effect")


@pytest.fixture(scope="module")
def fuzz_stack(
    stacks: Stacks, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Tally]]:
    """A stack of its own, on a PostgreSQL and a Redis of its own: the generated data
    (roles, regions, namespaces...) reaches no other test."""
    base = tmp_path_factory.mktemp("fuzz-servers")
    redis, postgres = OwnRedis(base), OwnPostgres()
    tally = Tally()
    try:
        redis.start()
        postgres.init()
        postgres.start()
        stack = stacks.get(
            FLAVOUR, env={"EDGE_DATABASE_URL": postgres.url, "EDGE_REDIS_URL": redis.url}
        )
        yield stack, tally
        print("\n" + tally.report())
    finally:
        try:
            stacks.stop(FLAVOUR)
        finally:
            try:
                postgres.remove()
            finally:
                redis.stop()


@pytest.fixture(scope="module")
def callers(fuzz_stack: tuple[Stack, Tally]) -> dict[str, Caller]:
    stack, _ = fuzz_stack
    password = (stack.var_dir / "admin-password").read_text().strip()
    admin = _login(stack, "admin", password, "web")
    _grant_admin(stack, admin)
    username = f"fuzz{uuid.uuid4().hex[:10]}"
    created = httpx.post(
        stack.public + "/api/v1/users",
        json={"username": username, "password": PASSWORD, "region": "east"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    user = _login(stack, username, PASSWORD, "web")
    return {
        "admin": Caller("admin", "admin", password, admin),
        "user": Caller("user", username, PASSWORD, user),
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
    with requests.Session() as session:
        yield Target(service, callers[role], stack, tally, session)


@pytest.fixture
def service_schema(fuzz_target: Target) -> BaseSchema:
    """The service's own document, as its running instance serves it, aimed at the gateway."""
    port = SERVICES[fuzz_target.service] + PORT_SHIFT
    doc = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(doc)
    for pattern in EXCLUDED:
        schema = schema.exclude(path_regex=pattern)
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
        headers = _login(fuzz_target.stack, caller.username, caller.password, "app")
    response = case.call(session=fuzz_target.session, headers=headers)
    fuzz_target.tally.add(fuzz_target.service, caller.role, case, response.status_code)
    case.validate_response(response, checks=CHECKS, headers=headers)
