"""A template's variables, checked before it renders.

A template declares its variables (name, type, required). Saving one refuses a
source that uses an undeclared name; sending refuses values that are missing,
undeclared or of the wrong type, before anything is rendered or stored. Rendering
itself happens in worker processes (:mod:`sv_notice.templates.renderer`): Jinja2's
sandbox with ``StrictUndefined``, a deadline, and caps on output and memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from jinja2 import TemplateError, meta

from sv_notice.exceptions import InvalidTemplate, InvalidVariables
from sv_notice.templates.sandbox import ENV

VariableType = Literal["string", "integer", "number", "boolean"]


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
        return set(meta.find_undeclared_variables(ENV.parse(source)))
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


def context_of(declared: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """What a template sees: every declared variable, None when an optional one is not given."""
    return {name: values.get(name) for name in declared}
