"""Casbin's own RBAC-with-domains example, loaded through the API, decides exactly as pycasbin.

The fixtures are Casbin's ``examples/rbac_with_domains_model.conf`` and
``examples/rbac_with_domains_policy.csv``. The policy goes in through the public API
(roles, then ``POST /policies`` and ``POST /assignments``); the reference is pycasbin's
own ``Enforcer`` on the two files.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import casbin
import httpx
import pytest

from auth_rbac.main import create_app
from auth_rbac.policy.enforcer import model_text
from tests.auth_rbac.conftest import admin_client, fresh_pg_schema, rbac_settings

FIXTURES = Path(__file__).parent / "fixtures"
MODEL = FIXTURES / "rbac_with_domains_model.conf"
POLICY = FIXTURES / "rbac_with_domains_policy.csv"
FIELDS = ("sub", "dom", "obj", "act")
SECTIONS = [("r", "r"), ("p", "p"), ("g", "g"), ("e", "e"), ("m", "m")]


def example_rules() -> list[list[str]]:
    with POLICY.open() as handle:
        return [[v.strip() for v in row] for row in csv.reader(handle) if row]


def reference() -> casbin.Enforcer:
    return casbin.Enforcer(str(MODEL), str(POLICY))


async def load_through_api(client: httpx.AsyncClient, rules: list[list[str]]) -> None:
    for _, _user, role, dom in (r for r in rules if r[0] == "g"):
        resp = await client.post("/api/v1/rbac/roles", json={"name": role, "dom": dom})
        assert resp.status_code in (201, 409), resp.text
    for rule in rules:
        if rule[0] == "p":
            sub, dom, obj, act = rule[1:]
            body = {"sub": sub, "dom": dom, "obj": obj, "act": act}
            resp = await client.post("/api/v1/rbac/policies", json=body)
        else:
            user, role, dom = rule[1:]
            resp = await client.post(
                "/api/v1/rbac/assignments", json={"user": user, "role": role, "dom": dom}
            )
        assert resp.status_code == 201, resp.text


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
async def loaded(
    request: pytest.FixtureRequest, tmp_path: Path, pg_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """auth-rbac holding the example policy, on SQLite or on PostgreSQL."""
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            settings = rbac_settings(tmp_path)
        else:
            schema = await stack.enter_async_context(fresh_pg_schema())
            settings = rbac_settings(tmp_path, database_url=pg_url, schema=schema)
        client = await stack.enter_async_context(admin_client(create_app(settings)))
        await load_through_api(client, example_rules())
        yield client


def test_service_model_is_casbins_example_model() -> None:
    ours = casbin.Enforcer.new_model(text=model_text())
    theirs = casbin.Enforcer.new_model(path=str(MODEL))
    for sec, key in SECTIONS:
        assert ours[sec][key].value == theirs[sec][key].value, sec


async def test_enforce_equals_pycasbin_for_every_combination_of_the_example(
    loaded: httpx.AsyncClient,
) -> None:
    rules = example_rules()
    p_rules = [r[1:] for r in rules if r[0] == "p"]
    g_rules = [r[1:] for r in rules if r[0] == "g"]
    subjects = sorted({r[0] for r in p_rules} | {r[0] for r in g_rules} | {r[1] for r in g_rules})
    domains = sorted({r[1] for r in p_rules} | {r[2] for r in g_rules})
    objects = sorted({r[2] for r in p_rules})
    actions = sorted({r[3] for r in p_rules})
    enforcer = reference()
    combos = list(itertools.product(subjects, domains, objects, actions))
    assert len(combos) == 3 * 2 * 2 * 2
    allowed = 0
    for sub, dom, obj, act in combos:
        resp = await loaded.post(
            "/api/v1/rbac/enforce", json={"sub": sub, "dom": dom, "obj": obj, "act": act}
        )
        assert resp.status_code == 200, resp.text
        expected = enforcer.enforce(sub, dom, obj, act)
        assert resp.json()["allowed"] is expected, (sub, dom, obj, act)
        allowed += expected
    # alice on data1 in domain1, bob on data2 in domain2, the role admin on both
    assert allowed == 8


async def test_batch_enforce_equals_pycasbin_with_every_token_in_every_position(
    loaded: httpx.AsyncClient,
) -> None:
    """Also the nonsense requests (a domain as subject...): 9 tokens, 6,561 requests."""
    tokens = sorted({value for rule in example_rules() for value in rule[1:]})
    combos = list(itertools.product(tokens, repeat=4))
    enforcer = reference()
    for start in range(0, len(combos), 1000):
        chunk = combos[start : start + 1000]
        resp = await loaded.post(
            "/api/v1/rbac/enforce/batch",
            json={"requests": [dict(zip(FIELDS, c, strict=True)) for c in chunk]},
        )
        assert resp.status_code == 200, resp.text
        got = [r["allowed"] for r in resp.json()["results"]]
        assert got == [enforcer.enforce(*c) for c in chunk]


async def test_roles_and_permissions_of_the_example_equal_pycasbins(
    loaded: httpx.AsyncClient,
) -> None:
    enforcer = reference()
    for user, dom in itertools.product(["alice", "bob", "admin"], ["domain1", "domain2"]):
        roles = (await loaded.get(f"/api/v1/rbac/users/{user}/roles?dom={dom}")).json()
        assert roles["roles"] == sorted(enforcer.get_roles_for_user_in_domain(user, dom))
        perms = (await loaded.get(f"/api/v1/rbac/users/{user}/permissions?dom={dom}")).json()
        got = sorted((p["via"], dom, p["obj"], p["act"]) for p in perms["permissions"])
        expected = sorted(tuple(p) for p in enforcer.get_implicit_permissions_for_user(user, dom))
        assert got == expected
