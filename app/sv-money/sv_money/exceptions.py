"""Errors shared by sv-money's domains, as problem+json."""

from __future__ import annotations

from edgelib.problems import Problem, ServiceUnavailable, Unprocessable


class WrongRegion(Problem):
    status_code, type_slug, title = 421, "wrong-region", "Not this user's region"


class UnknownUser(Unprocessable):
    type_slug, title = "unknown-user", "No such user"


class UnknownCurrency(Unprocessable):
    type_slug, title = "unknown-currency", "Not an ISO 4217 currency"


class AmountTooLarge(Unprocessable):
    type_slug, title = "amount-too-large", "Amount too large"


class PeerUnavailable(ServiceUnavailable):
    type_slug, title = "peer-unavailable", "A service this request needs is unavailable"


class PeerProblem(Problem):
    """A peer's definite refusal (4xx), shown to the caller as the peer phrased it."""

    def __init__(self, status: int, type_slug: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status
        self.type_slug = type_slug
        self.title = title
