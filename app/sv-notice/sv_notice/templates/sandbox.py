"""The Jinja2 sandbox templates render in; imported by the render worker process.

Kept free of the service's imports so a worker starts in a few dozen milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.sandbox import SandboxedEnvironment

ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class RenderError(Exception):
    """A template failed to render; the message is safe to show to its author."""


def render_fields(
    fields: Mapping[str, str], context: Mapping[str, Any], *, max_output: int
) -> dict[str, str]:
    """Render each field's source; stop as soon as one grows past ``max_output`` characters."""
    out: dict[str, str] = {}
    for name, source in fields.items():
        parts: list[str] = []
        size = 0
        try:
            for chunk in ENV.from_string(source).generate(dict(context)):
                size += len(chunk)
                if size > max_output:
                    raise RenderError(f"the rendered {name} exceeds {max_output} characters")
                parts.append(chunk)
        except RenderError:
            raise
        except MemoryError as exc:
            raise RenderError(f"rendering the {name} needs more memory than allowed") from exc
        except Exception as exc:  # the sandbox's SecurityError, UndefinedError, 1/0 ...
            raise RenderError(f"rendering failed: {type(exc).__name__}: {exc}") from exc
        out[name] = "".join(parts).strip()
    return out


#: Nodes whose cost is linear in the template and its values: no loops, no calls, no
#: assignments (``set x = x ~ x`` doubles), no ``*``, ``**`` or ``%``.
_LINEAR_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.If,
    nodes.CondExpr, nodes.And, nodes.Or, nodes.Not, nodes.Compare, nodes.Operand,
    nodes.Concat, nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Add, nodes.Sub,
    nodes.Div, nodes.FloorDiv, nodes.Neg, nodes.Pos, nodes.Filter, nodes.Test,
    nodes.Keyword,
)  # fmt: skip
#: Filters whose output grows at most linearly with their input.
_LINEAR_FILTERS = frozenset(
    {"e", "escape", "upper", "lower", "title", "capitalize", "trim", "default", "d",
     "string", "int", "float", "round", "abs", "length", "count", "striptags", "first",
     "last", "truncate", "urlencode", "tojson"}
)  # fmt: skip


def is_linear(source: str) -> bool:
    """True when rendering ``source`` is bounded by its size and its values' sizes.

    Such templates (``Hi {{ name }}{% if note %}: {{ note }}{% endif %}``, the common
    case) render in-process; anything else goes to a worker process with a deadline.
    """
    try:
        tree = ENV.parse(source)
    except TemplateError:
        return False
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _LINEAR_NODES):
            return False
        if isinstance(node, nodes.Filter) and node.name not in _LINEAR_FILTERS:
            return False
        if isinstance(node, nodes.Test) and node.name not in ENV.tests:
            return False
    return True
