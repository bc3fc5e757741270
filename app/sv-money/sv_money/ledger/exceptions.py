"""Errors of the ledger, as problem+json."""

from edgelib.problems import Unprocessable


class InsufficientFunds(Unprocessable):
    type_slug, title = "insufficient-funds", "Insufficient funds"


class BalanceLimit(Unprocessable):
    type_slug, title = "balance-limit", "Balance limit reached"


class UnbalancedEntry(ValueError):
    """A journal entry whose postings do not sum to zero: a bug, never user input."""
