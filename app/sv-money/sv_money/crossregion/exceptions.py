"""Errors of cross-region transfers, as problem+json."""

from edgelib.problems import Conflict, NotFound


class TransferMismatch(Conflict):
    type_slug, title = "transfer-mismatch", "Transfer id already used for another transfer"


class InboundNotFound(NotFound):
    type_slug, title = "inbound-transfer-not-found", "No decision on that transfer"


class OutboundNotFound(NotFound):
    type_slug, title = "outbound-transfer-not-found", "No such transfer to another region"
