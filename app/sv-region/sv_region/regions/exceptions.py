"""Errors of the regions domain, as problem+json."""

from edgelib.problems import Conflict, NotFound, Unprocessable


class RegionNotFound(NotFound):
    type_slug = "region-not-found"
    title = "Region not found"


class RuleNotFound(NotFound):
    type_slug = "rule-not-found"
    title = "Assignment rule not found"


class RuleConflict(Conflict):
    type_slug = "rule-conflict"
    title = "Assignment rule exists"


class RegionInUse(Conflict):
    type_slug = "region-in-use"
    title = "Region in use"


class InvalidRule(Unprocessable):
    type_slug = "invalid-rule"
    title = "Invalid assignment rule"
