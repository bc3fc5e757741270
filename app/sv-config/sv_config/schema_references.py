"""JSON Schema references resolve inside the schema document only; nothing is ever fetched.

jsonschema's default registry retrieves ``http(s)`` references with urllib, so a schema
holding ``{"$ref": "http://10.0.0.5/x.json"}`` made sv-config send a GET to any address a
caller chose (server-side request forgery). Every validator here uses :data:`LOCAL_ONLY`,
whose retrieve step refuses, and :func:`refuse_outside_references` finds every reference
at upload time, including ones the values of the day never reach.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012, specification_with

from sv_config.exceptions import InvalidSchema

#: Keywords whose value is a reference to resolve (draft 2020-12, 2019-09, and older).
_REFERENCE_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


def _refuse_retrieval(uri: str) -> Resource[Any]:
    # Raising NoSuchResource (not a generic error) makes referencing report Unresolvable.
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


#: The registry every validator gets: the built-in meta-schemas, and no retrieval.
LOCAL_ONLY: Registry[Any] = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]


def refuse_outside_references(schema: Mapping[str, Any], validator_class: Any) -> None:
    """Raise :class:`InvalidSchema` for any reference that leaves the document or dangles."""
    meta = validator_class.META_SCHEMA
    dialect = validator_class.ID_OF(meta) or "urn:unknown-dialect"
    specification = specification_with(dialect, default=DRAFT202012)
    root = specification.create_resource(schema)
    resolver = SPECIFICATIONS.combine(LOCAL_ONLY).resolver_with_root(root)
    pending = [(root, resolver)]
    while pending:
        resource, scope = pending.pop()
        contents = resource.contents
        if isinstance(contents, Mapping):
            for keyword in _REFERENCE_KEYWORDS:
                reference = contents.get(keyword)
                if isinstance(reference, str):
                    _resolve(scope, keyword, reference)
        for sub in resource.subresources():
            pending.append((sub, scope.in_subresource(sub)))


def _resolve(scope: Any, keyword: str, reference: str) -> None:
    try:
        scope.lookup(reference)
    except Unresolvable as exc:
        raise InvalidSchema(
            f"{keyword} {_quoted(reference)} does not resolve inside the schema; "
            "references to other documents are never fetched"
        ) from exc


def _quoted(reference: str, limit: int = 200) -> str:
    return repr(reference if len(reference) <= limit else reference[: limit - 3] + "...")
