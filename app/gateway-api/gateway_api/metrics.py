"""The gateway's traffic counters: plain integers on the hot path, read at scrape time.

Each worker process counts what it forwards in one :class:`GatewayMetrics`: a dict
increment per request and per upstream attempt, a bucket increment per histogram, no
locks, no I/O, no ``prometheus_client`` objects. At scrape time the admin listener
asks every worker for :meth:`GatewayMetrics.snapshot` (over a local socket, see
:mod:`gateway_api.workers`), adds the snapshots up (:mod:`gateway_api.admin.metrics`)
and writes the Prometheus text. The labels are bounded: route *names* from the route
table (``none`` when nothing matched), seven methods and ``other``, five status
classes, the topology's regions and pools, and a fixed set of refusal reasons.

Compiled with mypyc (:mod:`gateway_api.native`): it runs once or twice per request.
"""

from __future__ import annotations

from typing import Any

#: Upper bounds (seconds) of the request and upstream latency histograms (``le``).
DURATION_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STATUS_CLASSES = ("1xx", "1xx", "2xx", "3xx", "4xx", "5xx")

#: A refusal's problem type (``type_slug``) → the ``reason`` label. Problems not named
#: here (502, 503, 504: the upstream's failures) are not refusals.
REFUSAL_REASONS: dict[str, str] = {
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
SERVER_REFUSALS: dict[int, str] = {
    400: "malformed",
    408: "request_timeout",
    431: "header_size",
}


def status_class(status: int) -> str:
    """``2xx`` for 200..299 (499, the client gone, is ``4xx``); ``5xx`` beyond."""
    index = status // 100
    if index < 1:
        return "1xx"
    if index > 5:
        return "5xx"
    return STATUS_CLASSES[index]


class Histogram:
    """Counts per bucket (not cumulative; the last one is ``+Inf``) and the sum."""

    def __init__(self, bounds: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.bounds = bounds
        self.counts: list[int] = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        index = 0
        for bound in self.bounds:
            if value <= bound:
                break
            index += 1
        self.counts[index] += 1
        self.sum += value

    def snapshot(self) -> list[Any]:
        """``[count_0, ..., count_inf, sum]``: JSON, and what :func:`merge` adds up."""
        out: list[Any] = list(self.counts)
        out.append(self.sum)
        return out


class GatewayMetrics:
    """One worker's traffic counters (see the module's docstring)."""

    def __init__(self) -> None:
        #: (route, method, status class, region) → requests.
        self.requests: dict[tuple[str, str, str, str], int] = {}
        self.route_latency: dict[str, Histogram] = {}
        self.upstream_latency: dict[str, Histogram] = {}
        #: (upstream, outcome) → attempts.
        self.attempts: dict[tuple[str, str], int] = {}
        self.refusals: dict[str, int] = {}
        self.in_flight = 0
        self.tunnels = 0

    def request(self, route: str, method: str, status: int, region: str, seconds: float) -> None:
        """One request answered (or given up on): its counter and its latency.

        A WebSocket tunnel (101) is counted, but its lifetime is not a latency.
        """
        if method not in METHODS:
            method = "other"
        key = (route, method, status_class(status), region)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        if status == 101:
            return
        histogram = self.route_latency.get(route)
        if histogram is None:
            histogram = self.route_latency[route] = Histogram()
        histogram.observe(seconds)

    def attempt(self, upstream: str, outcome: str, seconds: float) -> None:
        """One try on one instance of ``upstream`` and how it ended."""
        key = (upstream, outcome)
        attempts = self.attempts
        attempts[key] = attempts.get(key, 0) + 1
        histogram = self.upstream_latency.get(upstream)
        if histogram is None:
            histogram = self.upstream_latency[upstream] = Histogram()
        histogram.observe(seconds)

    def retry(self, upstream: str) -> None:
        """A retry sent (counted as ``outcome="retry"``, besides its own outcome)."""
        key = (upstream, "retry")
        self.attempts[key] = self.attempts.get(key, 0) + 1

    def refused(self, type_slug: str) -> None:
        """A problem answered: counted when it is a refusal (see :data:`REFUSAL_REASONS`)."""
        reason = REFUSAL_REASONS.get(type_slug)
        if reason is not None:
            self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def refused_by_server(self, status: int) -> None:
        reason = SERVER_REFUSALS.get(status)
        if reason is not None:
            self.refusals[reason] = self.refusals.get(reason, 0) + 1

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
