"""Templates per category and locale: sandboxed, variables declared and checked before sending."""

from __future__ import annotations

import pytest

from sv_notice.exceptions import InvalidVariables, RenderFailed
from sv_notice.templates import rendering
from sv_notice.templates.renderer import TemplateRenderer
from sv_notice.templates.service import locale_chain
from tests.sv_notice.conftest import ADMIN, NoticeApi, new_user

TEMPLATES = "/api/v1/notices/admin/templates"


async def _category(notice: NoticeApi, name: str = "promo.weekly", **fields: object) -> None:
    body = {"channels": ["in_app", "realtime"], "description": "weekly digest", **fields}
    resp = await notice.call("PUT", f"/api/v1/notices/admin/categories/{name}", ADMIN, json=body)
    assert resp.status_code == 200, resp.text


async def test_templates_per_locale_with_fallback_to_language_then_default(
    notice: NoticeApi,
) -> None:
    await _category(notice)
    variables = {"name": {"type": "string"}, "count": {"type": "integer"}}
    for locale, title in [("en", "Hi {{ name }}"), ("de", "Hallo {{ name }}")]:
        resp = await notice.call(
            "PUT",
            f"{TEMPLATES}/promo.weekly/{locale}",
            ADMIN,
            json={"title": title, "body": "{{ count }} new items", "variables": variables},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["version"] == 1
    again = await notice.call(
        "PUT",
        f"{TEMPLATES}/promo.weekly/en",
        ADMIN,
        json={"title": "Hello {{ name }}", "body": "{{ count }} new", "variables": variables},
    )
    assert again.json()["version"] == 2

    user = new_user()
    values = {"name": "Ann", "count": 3}
    for locale, expected in [("de-AT", "Hallo Ann"), ("fr", "Hello Ann"), (None, "Hello Ann")]:
        sent = await notice.send(
            user_id=user.user_id, category="promo.weekly", variables=values, locale=locale
        )
        assert sent.status_code == 202, sent.text
        assert sent.json()["title"] == expected
    preview = await notice.call(
        "POST", f"{TEMPLATES}/promo.weekly/de/preview", ADMIN, json={"variables": values}
    )
    assert preview.json() == {
        "category": "promo.weekly",
        "locale": "de",
        "title": "Hallo Ann",
        "body": "3 new items",
    }
    listed = await notice.call("GET", TEMPLATES, ADMIN, params={"category": "promo.weekly"})
    assert [t["locale"] for t in listed.json()] == ["de", "en"]
    deleted = await notice.call("DELETE", f"{TEMPLATES}/promo.weekly/de", ADMIN)
    assert deleted.status_code == 204
    missing = await notice.call("GET", f"{TEMPLATES}/promo.weekly/de", ADMIN)
    assert missing.status_code == 404


async def test_saving_refuses_bad_syntax_and_undeclared_variables(notice: NoticeApi) -> None:
    await _category(notice)
    cases = [
        ({"title": "{{ name ", "body": "x", "variables": {"name": {}}}, "invalid-template"),
        ({"title": "{{ who }}", "body": "x", "variables": {"name": {}}}, "invalid-template"),
        ({"title": "t", "body": "b", "variables": {"bad-name": {}}}, "validation-error"),
        ({"title": "t", "body": "b", "variables": {"n": {"type": "date"}}}, "validation-error"),
        ({"title": "", "body": "b"}, "validation-error"),
    ]
    for body, problem in cases:
        resp = await notice.call("PUT", f"{TEMPLATES}/promo.weekly/en", ADMIN, json=body)
        assert resp.status_code == 422, body
        assert resp.json()["type"].endswith("/" + problem), resp.text
    no_category = await notice.call(
        "PUT", f"{TEMPLATES}/nope.none/en", ADMIN, json={"title": "t", "body": "b"}
    )
    assert no_category.status_code == 404
    bad_locale = await notice.call(
        "PUT", f"{TEMPLATES}/promo.weekly/EN_us", ADMIN, json={"title": "t", "body": "b"}
    )
    assert bad_locale.status_code == 422


async def test_sends_with_mismatched_variables_are_refused_before_anything_is_stored(
    notice: NoticeApi,
) -> None:
    user = new_user()
    cases = [
        {"amount": "1", "currency": "EUR", "from_username": "bob"},  # transfer_id missing
        {"amount": 1, "currency": "EUR", "from_username": "bob", "transfer_id": "t"},
        {"amount": "1", "currency": "EUR", "from_username": "b", "transfer_id": "t", "x": "y"},
    ]
    for variables in cases:
        resp = await notice.send(
            user_id=user.user_id, category="wallet.transfer_received", variables=variables
        )
        assert resp.status_code == 422, variables
        assert resp.json()["type"].endswith("/invalid-variables")
        assert resp.json()["errors"]
    unknown = await notice.send(user_id=user.user_id, category="nope.none", variables={})
    assert unknown.status_code == 422
    assert unknown.json()["type"].endswith("/unknown-category")
    wrong_channel = await notice.send(
        user_id=user.user_id,
        category="general",
        variables={"title": "t", "body": "b"},
        channels=["pigeon"],
    )
    assert wrong_channel.status_code == 422
    assert (await notice.inbox(user))["items"] == []


async def test_the_sandbox_keeps_templates_away_from_python_internals(notice: NoticeApi) -> None:
    await _category(notice, "hack.attempt")
    evil = "{{ name.__class__.__mro__[1].__subclasses__() }}"
    saved = await notice.call(
        "PUT",
        f"{TEMPLATES}/hack.attempt/en",
        ADMIN,
        json={"title": "t", "body": evil, "variables": {"name": {"type": "string"}}},
    )
    assert saved.status_code == 200  # syntactically fine; refused when rendered
    sent = await notice.send(
        user_id=new_user().user_id, category="hack.attempt", variables={"name": "x"}
    )
    assert sent.status_code == 422
    assert sent.json()["type"].endswith("/render-failed")
    assert "SecurityError" in sent.json()["detail"]


async def test_rendering_checks_types_and_caps_output() -> None:
    declared = {"n": {"type": "integer"}, "flag": {"type": "boolean", "required": False}}
    rendering.check_values(declared, {"n": 3})
    with pytest.raises(InvalidVariables):
        rendering.check_values(declared, {"n": True})
    with pytest.raises(InvalidVariables):
        rendering.check_values(declared, {"n": 1.5})
    renderer = TemplateRenderer()
    try:

        async def render(source: str, n: int) -> str:
            context = rendering.context_of(declared, {"n": n})
            return (await renderer.render({"body": source}, context))["body"]

        assert await render("{{ n }}{% if flag %}!{% endif %}", 2) == "2"
        with pytest.raises(RenderFailed):
            await render("{% for i in range(n) %}xxxxxxxxxx{% endfor %}", 10**5)
        with pytest.raises(RenderFailed):
            await render("{{ n / 0 }}", 1)
    finally:
        await renderer.aclose()


def test_locale_chain() -> None:
    assert locale_chain("de-AT", "en") == ["de-AT", "de", "en"]
    assert locale_chain(None, "en") == ["en"]
    assert locale_chain("en", "en") == ["en"]
