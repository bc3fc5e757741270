"""The gateway's traffic counters: plain integers on the hot path, read at scrape time.

Each worker process counts what it forwards in one :class:`GatewayMetrics`: per request
two lookups by string (the route's counters, then the region's row), one counter cell
incremented and one histogram bucket; per upstream attempt the same. No tuple keys, no
locks, no I/O, no ``prometheus_client`` objects. At scrape time the admin listener
asks every worker for :meth:`GatewayMetrics.snapshot` (over a local socket, see
:mod:`gateway_api.workers`), adds the snapshots up (:mod:`gateway_api.admin.metrics`)
and writes the Prometheus text. The labels are bounded: route *names* from the route
table (``none`` when nothing matched), seven methods and ``other``, five status
classes, the topology's regions and pools, and a fixed set of refusal reasons.

Compiled with mypyc (:mod:`gateway_api.native`): it runs once or twice per request.
The constants are ``Final`` so the compiled code reads them as C statics, not from the
module's dict (doc/performance.md, "Instructions per request").
"""

from __future__ import annotations

from typing import Any, Final

#: Upper bounds (seconds) of the request and upstream latency histograms (``le``).
DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

#: The ``method`` label's values; any other method counts as ``other`` (the last).
METHOD_LABELS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other")
METHODS: Final = frozenset(METHOD_LABELS[:-1])
_METHOD_INDEX: Final[dict[str, int]] = {m: i for i, m in enumerate(METHOD_LABELS[:-1])}
_OTHER_METHOD: Final = len(METHOD_LABELS) - 1
#: The ``status_class`` label's values, by ``status // 100 - 1`` (clamped to 1xx..5xx).
CLASS_LABELS: Final = ("1xx", "2xx", "3xx", "4xx", "5xx")
_CLASSES: Final = 5
#: A region's row of request counters: one slot per (method, status class).
_ROW: Final = len(METHOD_LABELS) * _CLASSES
#: The ``outcome`` label's values of upstream attempts (forwarding._attempt, retries).
OUTCOMES: Final = (
    "ok", "bad_status", "connect_error", "timeout", "upstream_error", "aborted", "retry",
)  # fmt: skip
_OUTCOME_INDEX: Final[dict[str, int]] = {o: i for i, o in enumerate(OUTCOMES)}
_RETRY: Final = len(OUTCOMES) - 1

#: A refusal's problem type (``type_slug``) → the ``reason`` label. Problems not named
#: here (502, 503, 504: the upstream's failures) are not refusals.
REFUSAL_REASONS: Final[dict[str, str]] = {
    "rate-limited": "rate_limit",
    "too-many-requests": "rate_limit",
    "quota-exceeded": "quota",
    "unauthorized": "authn",
    "invalid-token": "authn",
    "session-revoked": "authn",
    "forbidden": "authz",
    "permission-denied": "authz",
    "payload-too-large": "body_size",
    "unsafe-path": "path",
    "no-route": "no_route",
    "method-not-allowed": "method",
    "upgrade-refused": "upgrade",
    "bad-request": "bad_request",
}
#: The server's own refusals (malformed HTTP, before any route) by status.
SERVER_REFUSALS: Final[dict[int, str]] = {
    400: "malformed",
    408: "request_timeout",
    431: "header_size",
}


def _method_index(method: str) -> int:
    """The method's slot in :data:`METHOD_LABELS` (compared in order of frequency:
    cheaper than a dict lookup for the usual ones)."""
    if method == "GET":
        return 0
    if method == "POST":
        return 2
    return _METHOD_INDEX.get(method, _OTHER_METHOD)


def _class_index(status: int) -> int:
    """0 for 1xx (and below), 1 for 2xx, ... 4 for 5xx (and beyond)."""
    index = status // 100 - 1
    if index < 0:
        return 0
    if index > 4:
        return 4
    return index


def status_class(status: int) -> str:
    """``2xx`` for 200..299 (499, the client gone, is ``4xx``); ``5xx`` beyond."""
    return CLASS_LABELS[_class_index(status)]


class Count:
    """One counter in a native int field. An int kept in a list is a boxed object, and
    past 256 every increment of it would allocate a new one; this increments in place."""

    def __init__(self) -> None:
        self.n = 0


def _counts(size: int) -> list[Count]:
    return [Count() for _ in range(size)]


class Histogram:
    """Counts per bucket (not cumulative; the last one is ``+Inf``) and the sum."""

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.bounds = bounds
        self.cells = _counts(len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        index = 0
        for bound in self.bounds:
            if value <= bound:
                break
            index += 1
        self.cells[index].n += 1
        self.sum += value

    @property
    def counts(self) -> list[int]:
        """The count per bucket."""
        return [cell.n for cell in self.cells]

    def observed(self) -> bool:
        """Whether any value was observed."""
        return any(cell.n for cell in self.cells)

    def snapshot(self) -> list[Any]:
        """``[count_0, ..., count_inf, sum]``: JSON, and what :func:`merge` adds up."""
        out: list[Any] = list(self.counts)
        out.append(self.sum)
        return out


class RouteCounters:
    """One route label's requests, by region, method and status class, and its latency."""

    def __init__(self) -> None:
        #: region → a row of :data:`_ROW` counts, at ``method * 5 + class``.
        self.regions: dict[str, list[Count]] = {}
        self.latency = Histogram()


class UpstreamCounters:
    """One upstream label's attempts by outcome (:data:`OUTCOMES`) and their latency."""

    def __init__(self) -> None:
        self.outcomes = _counts(len(OUTCOMES))
        self.latency = Histogram()


class GatewayMetrics:
    """One worker's traffic counters (see the module's docstring)."""

    def __init__(self) -> None:
        #: route label → its counters.
        self.routes: dict[str, RouteCounters] = {}
        #: upstream label → its counters.
        self.upstreams: dict[str, UpstreamCounters] = {}
        self.refusals: dict[str, int] = {}
        self.in_flight = 0
        self.tunnels = 0

    def route(self, route: str) -> RouteCounters:
        counters = self.routes.get(route)
        if counters is None:
            counters = self.routes[route] = RouteCounters()
        return counters

    def upstream(self, upstream: str) -> UpstreamCounters:
        counters = self.upstreams.get(upstream)
        if counters is None:
            counters = self.upstreams[upstream] = UpstreamCounters()
        return counters

    def request(self, route: str, method: str, status: int, region: str, seconds: float) -> None:
        """One request answered (or given up on): its counter and its latency.

        A WebSocket tunnel (101) is counted, but its lifetime is not a latency.
        """
        counters = self.routes.get(route)
        if counters is None:
            counters = self.routes[route] = RouteCounters()
        row = counters.regions.get(region)
        if row is None:
            row = counters.regions[region] = _counts(_ROW)
        row[_method_index(method) * _CLASSES + _class_index(status)].n += 1
        if status != 101:
            counters.latency.observe(seconds)

    def attempt(self, upstream: str, outcome: str, seconds: float) -> None:
        """One try on one instance of ``upstream`` and how it ended (:data:`OUTCOMES`)."""
        counters = self.upstreams.get(upstream)
        if counters is None:
            counters = self.upstreams[upstream] = UpstreamCounters()
        counters.outcomes[_OUTCOME_INDEX[outcome]].n += 1
        counters.latency.observe(seconds)

    def retry(self, upstream: str) -> None:
        """A retry sent (counted as ``outcome="retry"``, besides its own outcome)."""
        self.upstream(upstream).outcomes[_RETRY].n += 1

    def refused(self, type_slug: str) -> None:
        """A problem answered: counted when it is a refusal (see :data:`REFUSAL_REASONS`)."""
        reason = REFUSAL_REASONS.get(type_slug)
        if reason is not None:
            self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def refused_by_server(self, status: int) -> None:
        reason = SERVER_REFUSALS.get(status)
        if reason is not None:
            self.refusals[reason] = self.refusals.get(reason, 0) + 1

    # -- read at scrape time (and by tests): the labelled views --------------------

    @property
    def requests(self) -> dict[tuple[str, str, str, str], int]:
        """(route, method, status class, region) → requests, for the counts above 0."""
        out: dict[tuple[str, str, str, str], int] = {}
        for route, counters in self.routes.items():
            for region, row in counters.regions.items():
                for slot, cell in enumerate(row):
                    n = cell.n
                    if n:
                        method = METHOD_LABELS[slot // _CLASSES]
                        out[(route, method, CLASS_LABELS[slot % _CLASSES], region)] = n
        return out

    @property
    def attempts(self) -> dict[tuple[str, str], int]:
        """(upstream, outcome) → attempts, for the counts above 0."""
        return {
            (upstream, OUTCOMES[i]): cell.n
            for upstream, counters in self.upstreams.items()
            for i, cell in enumerate(counters.outcomes)
            if cell.n
        }

    @property
    def route_latency(self) -> dict[str, Histogram]:
        """Route label → its latency histogram (routes with a latency observed)."""
        return {k: c.latency for k, c in self.routes.items() if c.latency.observed()}

    @property
    def upstream_latency(self) -> dict[str, Histogram]:
        return {k: c.latency for k, c in self.upstreams.items() if c.latency.observed()}

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain JSON-able values (the unit :func:`merge` adds up)."""
        return {
            "requests": [[*key, n] for key, n in self.requests.items()],
            "route_latency": {k: h.snapshot() for k, h in self.route_latency.items()},
            "upstream_latency": {k: h.snapshot() for k, h in self.upstream_latency.items()},
            "attempts": [[*key, n] for key, n in self.attempts.items()],
            "refusals": dict(self.refusals),
            "in_flight": self.in_flight,
            "tunnels": self.tunnels,
        }
