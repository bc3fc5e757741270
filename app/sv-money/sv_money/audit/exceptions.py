"""Errors of the audit, as problem+json."""

from edgelib.problems import Unprocessable


class UnknownRegion(Unprocessable):
    type_slug, title = "unknown-region", "Unknown region"
