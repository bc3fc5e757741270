"""Pages as HTML: the console's Jinja2 templates (autoescaped) rendered with the common
context (:func:`gateway_api.console.deps.template_context`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from gateway_api.console.deps import get_console, template_context
from gateway_api.console.pages import PAGES

TEMPLATES = Path(__file__).parent / "templates"


def template_environment() -> Environment:
    """The console's templates, autoescaped; an undefined name is an error, not blank."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["pages"] = PAGES
    return env


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered with the common context and ``context``."""
    env = get_console(request).templates
    html = env.get_template(template).render(template_context(request, **context))
    return HTMLResponse(html, status_code=status_code)


def is_htmx(request: Request) -> bool:
    """The request comes from htmx (answer with the fragment, not the whole page)."""
    return request.headers.get("hx-request") == "true"
