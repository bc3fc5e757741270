"""Templates rendered in Jinja2's sandbox, with their variables checked first.

A template declares its variables (name, type, required). Saving one refuses a
source that uses an undeclared name; sending refuses values that are missing,
undeclared or of the wrong type, before anything is rendered or stored. Rendering
runs in :class:`~jinja2.sandbox.SandboxedEnvironment` with ``StrictUndefined`` and
a cap on the output size, so a template cannot reach Python internals or flood a
notice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from sv_notice.exceptions import InvalidTemplate, InvalidVariables, RenderFailed

VariableType = Literal["string", "integer", "number", "boolean"]

#: Longest rendered text of one field, in characters.
MAX_OUTPUT = 20_000

_ENV = SandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
)


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        # NaN and the infinities are not JSON: they could not be stored.
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    return False


def referenced_names(source: str) -> set[str]:
    """Top-level names the template reads; a syntax error is an :class:`InvalidTemplate`."""
    try:
        return set(meta.find_undeclared_variables(_ENV.parse(source)))
    except TemplateError as exc:
        raise InvalidTemplate(f"template syntax error: {exc}") from exc


def check_source(fields: Mapping[str, str], declared: Mapping[str, Any]) -> None:
    """Every name used by ``fields`` (e.g. title, body) must be a declared variable."""
    for field, source in fields.items():
        unknown = sorted(referenced_names(source) - set(declared))
        if unknown:
            raise InvalidTemplate(
                f"the {field} uses undeclared variables: {', '.join(unknown)}",
                undeclared=unknown,
            )


def check_values(declared: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]) -> None:
    """Refuse missing, undeclared or mistyped values, listing every problem at once."""
    errors: list[dict[str, str]] = []
    for name, spec in declared.items():
        if name not in values or values[name] is None:
            if spec.get("required", True):
                errors.append({"variable": name, "error": "missing"})
            continue
        value = values[name]
        if not _type_ok(str(spec.get("type", "string")), value):
            errors.append({"variable": name, "error": f"expected {spec.get('type', 'string')}"})
        elif isinstance(value, str) and "\x00" in value:
            errors.append({"variable": name, "error": "contains a NUL character"})
    for name in sorted(set(values) - set(declared)):
        errors.append({"variable": name, "error": "not declared by the template"})
    if errors:
        summary = "; ".join(f"{e['variable']}: {e['error']}" for e in errors)
        raise InvalidVariables(f"template variables do not match: {summary}", errors=errors)


def render(source: str, declared: Mapping[str, Any], values: Mapping[str, Any]) -> str:
    """Render ``source`` in the sandbox; optional variables not given are None."""
    context = {name: values.get(name) for name in declared}
    try:
        template = _ENV.from_string(source)
        out: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderFailed(f"the rendered text exceeds {MAX_OUTPUT} characters")
            out.append(chunk)
    except RenderFailed:
        raise
    except Exception as exc:  # the sandbox's SecurityError, UndefinedError, 1/0 ...
        raise RenderFailed(f"rendering failed: {type(exc).__name__}: {exc}") from exc
    return "".join(out).strip()
