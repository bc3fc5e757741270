"""The errors callers of the statistics API see, each a problem+json document."""

from edgelib.problems import Problem


class InvalidStatsQuery(Problem):
    status_code, type_slug, title = 400, "invalid-stats-query", "Invalid statistics query"


class OutsideTenant(Problem):
    """A tenant's caller asked about another tenant."""

    status_code, type_slug, title = 403, "outside-tenant", "Outside your tenant"


class MissingBatchKey(Problem):
    status_code, type_slug, title = 400, "missing-idempotency-key", "Idempotency key required"


class StatsUnavailable(Problem):
    """This sv-log keeps no statistics (its store is MongoDB)."""

    status_code, type_slug, title = 503, "stats-unavailable", "Statistics unavailable"
