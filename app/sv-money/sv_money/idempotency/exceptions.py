"""Errors of idempotency keys, as problem+json."""

from edgelib.problems import BadRequest, Unprocessable


class IdempotencyKeyRequired(BadRequest):
    type_slug, title = "idempotency-key-required", "Idempotency-Key header required"


class IdempotencyKeyReused(Unprocessable):
    type_slug, title = "idempotency-key-reused", "Idempotency key reused with another request"
