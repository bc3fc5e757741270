"""Errors of transfers, as problem+json."""

from edgelib.problems import BadRequest, Conflict


class BadCursor(BadRequest):
    type_slug, title = "bad-cursor", "Malformed cursor"


class KeyContended(Conflict):
    type_slug, title = "idempotency-key-contended", "Idempotency key in use"
