"""Errors of transfers, as problem+json."""

from edgelib.problems import BadRequest, Conflict, NotFound, Unprocessable


class TransferNotFound(NotFound):
    type_slug, title = "transfer-not-found", "No such transfer"


class SelfTransfer(Unprocessable):
    type_slug, title = "self-transfer", "Payer and payee are the same user"


class BadCursor(BadRequest):
    type_slug, title = "bad-cursor", "Malformed cursor"


class KeyContended(Conflict):
    type_slug, title = "idempotency-key-contended", "Idempotency key in use"
