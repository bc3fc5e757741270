"""The OpenAPI document told as the services answer: every error is problem+json.

FastAPI documents a ``422`` with its own ``HTTPValidationError`` body, but
:mod:`edgelib.problems` answers every error, validation included, with an RFC 9457
document. The contract (what schemathesis checks the services against) says so: each
operation's ``422`` and a ``default`` response carry ``application/problem+json``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from edgelib.problems import PROBLEM_MEDIA_TYPE

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details, stamped with the trace and request ids.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "trace_id": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "additionalProperties": True,
}
_PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
# FastAPI's own validation-error models, which no answer of ours ever has.
_FASTAPI_MODELS = ("HTTPValidationError", "ValidationError")


def with_problem_responses(doc: dict[str, Any]) -> dict[str, Any]:
    """Document every operation's errors as problem+json (in place; returns ``doc``)."""
    for path_item in doc.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = {
                    "description": "The request does not match the expected schema.",
                    "content": _PROBLEM_CONTENT,
                }
            for status, response in responses.items():
                if status[:1] in ("4", "5") and "content" not in response:
                    response["content"] = _PROBLEM_CONTENT
            responses.setdefault(
                "default",
                {"description": "An error: RFC 9457 problem details.", "content": _PROBLEM_CONTENT},
            )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    if "HTTPValidationError" in schemas and "#/components/schemas/HTTPValidationError" not in str(
        doc["paths"]
    ):
        for name in _FASTAPI_MODELS:
            schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    return doc


def install_problem_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) document errors as problem+json."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_problem_responses(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
