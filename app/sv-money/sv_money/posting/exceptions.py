"""Errors more than one money domain raises, as problem+json."""

from edgelib.problems import NotFound, Unprocessable


class TransferNotFound(NotFound):
    type_slug, title = "transfer-not-found", "No such transfer"


class SelfTransfer(Unprocessable):
    type_slug, title = "self-transfer", "Payer and payee are the same user"
