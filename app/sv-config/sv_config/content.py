"""What a namespace's content is: typed keys with JSON values, checked by an optional schema.

Content is a mapping ``key -> {"type": ..., "value": ...}``. Clients see the values as one
JSON object, and that object is what a namespace's JSON Schema must accept.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

from sv_config.exceptions import InvalidItem, InvalidSchema, SchemaViolation
from sv_config.schema_references import LOCAL_ONLY, refuse_outside_references

ItemType = str
ITEM_TYPES = ("string", "integer", "number", "boolean", "object", "array", "json")
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
#: How many schema violations a refusal lists (the first ones, by location).
VIOLATIONS_SHOWN = 20

Content = dict[str, dict[str, Any]]


def infer_type(value: Any) -> ItemType:
    """The type a new key gets when its writer names none."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "json"


def matches_type(value: Any, item_type: ItemType) -> bool:
    if item_type == "json":
        return True
    if item_type == "boolean":
        return isinstance(value, bool)
    if item_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if item_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if item_type == "string":
        return isinstance(value, str)
    if item_type == "array":
        return isinstance(value, list)
    if item_type == "object":
        return isinstance(value, dict)
    return False


#: Deepest nesting of arrays and objects a value (or a schema) may have.
MAX_DEPTH = 64
_INT64 = (-(2**63), 2**63 - 1)


def storable_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot be stored and served as JSON by every database, or None.

    Python's JSON parser accepts NaN and Infinity, integers of any size, lone surrogates
    and NUL characters; PostgreSQL's json type and the JSON encoders do not.
    """
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if _INT64[0] <= value <= _INT64[1] else "an integer beyond 64 bits"
    if isinstance(value, float):
        return None if math.isfinite(value) else "NaN or Infinity (not JSON)"
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, list):
        for element in value:
            found = storable_problem(element, depth + 1)
            if found:
                return found
        return None
    if isinstance(value, dict):
        for name, element in value.items():
            found = _text_problem(name) if isinstance(name, str) else "a non-string key"
            found = found or storable_problem(element, depth + 1)
            if found:
                return found
        return None
    return f"a {type(value).__name__}"


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate"
    return None


def check_item(key: str, value: Any, item_type: ItemType, *, max_value_bytes: int) -> None:
    """Refuse a bad key, an unknown type, a value of the wrong type or an oversized value."""
    if not KEY_PATTERN.match(key):
        raise InvalidItem(
            f"key {key!r} must be 1-128 characters of letters, digits, '_', '.' or '-'",
            key=key,
        )
    if item_type not in ITEM_TYPES:
        raise InvalidItem(f"type {item_type!r} is not one of {', '.join(ITEM_TYPES)}", key=key)
    problem = storable_problem(value)
    if problem:
        raise InvalidItem(f"the value of {key!r} holds {problem}", key=key)
    if not matches_type(value, item_type):
        raise InvalidItem(f"the value of {key!r} is not of its type {item_type!r}", key=key)
    size = len(canonical(value))
    if size > max_value_bytes:
        raise InvalidItem(
            f"the value of {key!r} is {size} bytes; the limit is {max_value_bytes}", key=key
        )


def canonical(value: Any) -> bytes:
    """One byte string per JSON value, so ``1``, ``1.0`` and ``true`` never compare equal."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


class _ItemLike(Protocol):
    key: str
    type: str
    value: Any


def draft_content(items: Iterable[_ItemLike]) -> Content:
    """The content a set of draft items would release."""
    return {item.key: {"type": item.type, "value": item.value} for item in items}


def values_of(content: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON object clients see, and the schema checks."""
    return {key: item["value"] for key, item in content.items()}


def types_of(content: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    return {key: str(item["type"]) for key, item in content.items()}


@dataclass(frozen=True)
class Diff:
    added: dict[str, dict[str, Any]]
    removed: dict[str, dict[str, Any]]
    changed: dict[str, dict[str, Any]]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff(old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]) -> Diff:
    """Keys added, removed, and changed (in type or value) from ``old`` to ``new``."""
    added = {k: dict(new[k]) for k in sorted(new.keys() - old.keys())}
    removed = {k: dict(old[k]) for k in sorted(old.keys() - new.keys())}
    changed = {
        k: {"from": dict(old[k]), "to": dict(new[k])}
        for k in sorted(old.keys() & new.keys())
        if old[k]["type"] != new[k]["type"]
        or canonical(old[k]["value"]) != canonical(new[k]["value"])
    }
    return Diff(added, removed, changed)


def _validator_class(schema: Mapping[str, Any]) -> Any:
    return validators.validator_for(schema, default=Draft202012Validator)


def check_schema(schema: Mapping[str, Any], *, max_bytes: int) -> None:
    """Refuse a document that is not a usable JSON Schema."""
    problem = storable_problem(schema)
    if problem:
        raise InvalidSchema(f"the schema holds {problem}")
    size = len(canonical(schema))
    if size > max_bytes:
        raise InvalidSchema(f"the schema is {size} bytes; the limit is {max_bytes}")
    cls = _validator_class(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        raise InvalidSchema(f"not a valid JSON Schema at {where}: {exc.message}") from exc
    refuse_outside_references(schema, cls)
    # Resolve what an empty document reaches now, so a dangling $ref is caught early.
    violations(schema, {})


def violations(schema: Mapping[str, Any], values: Mapping[str, Any]) -> list[dict[str, str]]:
    """Where ``values`` breaks ``schema``: a JSON pointer and a message per violation."""
    cls = _validator_class(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER, registry=LOCAL_ONLY)
    try:
        errors = sorted(validator.iter_errors(dict(values)), key=lambda e: list(map(str, e.path)))
    except Unresolvable as exc:
        raise InvalidSchema(f"the schema refers to something it cannot resolve: {exc}") from exc
    except RecursionError as exc:
        raise InvalidSchema("the schema refers to itself without end") from exc
    return [
        {"pointer": "/" + "/".join(str(p) for p in error.path), "message": _short(error.message)}
        for error in errors[:VIOLATIONS_SHOWN]
    ]


def _short(message: str, limit: int = 300) -> str:
    # jsonschema quotes the offending value, which may be a whole document.
    return message if len(message) <= limit else message[: limit - 3] + "..."


def require_valid(
    schema: Mapping[str, Any] | None, content: Mapping[str, Mapping[str, Any]], what: str
) -> None:
    """Raise :class:`SchemaViolation` when ``content`` does not satisfy the namespace schema."""
    if schema is None:
        return
    found = violations(schema, values_of(content))
    if found:
        first = found[0]
        raise SchemaViolation(
            f"{what} breaks the namespace's schema: {first['pointer']}: {first['message']}",
            violations=found,
        )


@dataclass(frozen=True)
class ContentLimits:
    max_items: int = 1000
    max_value_bytes: int = 64 * 1024
    max_schema_bytes: int = 64 * 1024
    max_release_bytes: int = 1024 * 1024
