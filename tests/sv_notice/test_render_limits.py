"""Templates that would run forever or grow without end fail with 422, and never stall sv-notice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from sv_notice.exceptions import RenderFailed
from sv_notice.templates.renderer import RenderLimits, TemplateRenderer
from tests.sv_notice.conftest import ADMIN, NoticeApi, new_user

TEMPLATES = "/api/v1/notices/admin/templates"
LIMITS = RenderLimits(timeout=1.0, max_output=20_000, memory=512 * 1024 * 1024, workers=2)

#: Not linear (a loop), so it needs a worker process.
WARM = "{% for i in range(1) %}{% endfor %}"
HOSTILE = [
    # Ten billion iterations that print nothing: only a deadline stops them.
    "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    # One C call allocating a gigabyte, and one computing a billion-digit integer.
    "{{ 'x' * 1000000000 }}",
    "{{ 9 ** 999999999 }}",
    "{{ 'x' | center(1000000000) }}",
    "{{ lipsum(100000) }}",
    "{% for i in range(10**9) %}x{% endfor %}",
    "{% for i in range(99999) %}{{ 'y' * 9999 }}{% endfor %}",
]


@pytest.fixture
async def renderer() -> AsyncIterator[TemplateRenderer]:
    found = TemplateRenderer(LIMITS)
    await found.render({"warm": WARM}, {})  # start a worker before the clock runs
    yield found
    await found.aclose()


@pytest.mark.parametrize("source", HOSTILE)
async def test_a_hostile_template_fails_within_its_deadline(
    renderer: TemplateRenderer, source: str
) -> None:
    started = time.monotonic()
    with pytest.raises(RenderFailed) as failed:
        await renderer.render({"body": source}, {})
    elapsed = time.monotonic() - started
    assert elapsed < LIMITS.timeout + 1.0, (elapsed, failed.value.detail)
    # The pool recovers: the next template renders at once.
    assert await renderer.render({"body": "{{ a }}!" + WARM}, {"a": 1}) == {"body": "1!"}


async def test_a_loop_past_the_deadline_is_stopped_and_says_so(renderer: TemplateRenderer) -> None:
    with pytest.raises(RenderFailed, match=r"longer than 1 s"):
        await renderer.render({"body": HOSTILE[0]}, {})


async def test_output_past_the_cap_is_refused(renderer: TemplateRenderer) -> None:
    source = "{% for i in range(n) %}0123456789{% endfor %}"
    assert len((await renderer.render({"b": source}, {"n": 2000}))["b"]) == 20_000
    with pytest.raises(RenderFailed, match="exceeds 20000 characters"):
        await renderer.render({"b": source}, {"n": 2001})


async def test_a_hostile_send_is_422_and_the_service_keeps_answering(
    notice: NoticeApi,
) -> None:
    category = {"channels": ["in_app"], "description": "hostile"}
    created = await notice.call(
        "PUT", "/api/v1/notices/admin/categories/bomb", ADMIN, json=category
    )
    assert created.status_code == 200, created.text
    saved = await notice.call(
        "PUT", f"{TEMPLATES}/bomb/en", ADMIN, json={"title": "t", "body": HOSTILE[0]}
    )
    assert saved.status_code == 200, saved.text
    pool: TemplateRenderer = notice.app.state.template_renderer
    await asyncio.gather(pool.render({"a": WARM}, {}), pool.render({"b": WARM}, {}))

    async def bomb() -> float:
        started = time.monotonic()
        sent = await notice.send(user_id=new_user().user_id, category="bomb")
        assert sent.status_code == 422, sent.text
        assert sent.headers["content-type"] == "application/problem+json"
        assert sent.json()["type"].endswith("/render-failed")
        return time.monotonic() - started

    async def health() -> float:
        await asyncio.sleep(0.2)
        started = time.monotonic()
        assert (await notice.http.get("/healthz")).status_code == 200
        return time.monotonic() - started

    for _ in range(3):
        # A killed worker is replaced in the background; measure the deadline, not start-up.
        async with asyncio.timeout(60):
            while pool.idle_workers < 2:
                await asyncio.sleep(0.05)
        elapsed, healthy = await asyncio.gather(bomb(), health())
        assert elapsed < 1.0 + 2.0, elapsed  # the default deadline, plus a loaded machine's slack
        assert healthy < 0.5, healthy  # the event loop never ran template code


async def test_two_hostile_renders_run_side_by_side(renderer: TemplateRenderer) -> None:
    await asyncio.gather(renderer.render({"a": WARM}, {}), renderer.render({"b": WARM}, {}))
    started = time.monotonic()
    results = await asyncio.gather(
        renderer.render({"body": HOSTILE[0]}, {}),
        renderer.render({"body": HOSTILE[0]}, {}),
        return_exceptions=True,
    )
    assert all(isinstance(r, RenderFailed) for r in results), results
    assert time.monotonic() - started < LIMITS.timeout + 1.0


async def test_linear_templates_render_in_process_without_a_worker() -> None:
    renderer = TemplateRenderer(LIMITS)
    try:
        fields = {
            "title": "You received {{ amount }} {{ currency | upper }}",
            "body": "{{ who }} sent it.{% if note %} Note: {{ note | truncate(20) }}{% endif %}",
        }
        context = {"amount": "1.50", "currency": "eur", "who": "bob", "note": None}
        out = await renderer.render(fields, context)
        assert out == {"title": "You received 1.50 EUR", "body": "bob sent it."}
        assert renderer.idle_workers == 0  # no process was started
        with pytest.raises(RenderFailed, match="exceeds 20000 characters"):
            await renderer.render({"b": "{{ big }}"}, {"big": "x" * 20_001})
    finally:
        await renderer.aclose()
