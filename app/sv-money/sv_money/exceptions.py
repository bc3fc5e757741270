"""Errors shared by sv-money's domains, as problem+json."""

from __future__ import annotations

from edgelib.problems import Problem, Unprocessable


class WrongRegion(Problem):
    status_code, type_slug, title = 421, "wrong-region", "Not this user's region"


class UnknownCurrency(Unprocessable):
    type_slug, title = "unknown-currency", "Not an ISO 4217 currency"


class AmountTooLarge(Unprocessable):
    type_slug, title = "amount-too-large", "Amount too large"
