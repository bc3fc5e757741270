"""The service request stack's one middleware: request id, access log and RED metrics.

Pure ASGI (no ``BaseHTTPMiddleware``: its task and memory-stream per request cost more
than a small endpoint). The metrics are plain counters in this process, turned into
Prometheus families only when ``/metrics`` is scraped (:class:`HttpMetrics`): a request
costs two clock reads, three dictionary lookups and a few integer additions, with the
per-route series made once, on the route's first request.
"""

from __future__ import annotations

import logging
import random
import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgelib.logs import reset_request_id, set_request_id

access_log = logging.getLogger("edge.access")
#: Request ids name a request in logs; they need to be unique, not secret (no syscall).
_ids = random.Random()

#: Probes and scrapes: no access line and no metrics (they would drown the real traffic).
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
#: Methods counted under their own name; anything else a client invents is ``OTHER``.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The ``route`` label of a request that matched no route (never the raw path).
NO_ROUTE = "none"
#: Upper bounds (seconds) of the duration histogram's buckets, ``+Inf`` added.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class RouteSeries:
    """One (method, route)'s counters: requests per status class and the duration histogram."""

    __slots__ = ("buckets", "by_class", "count", "total_seconds")

    def __init__(self) -> None:
        self.by_class = [0, 0, 0, 0, 0]
        self.buckets = [0] * (len(DURATION_BUCKETS) + 1)
        self.count = 0
        self.total_seconds = 0.0

    def observe(self, status: int, seconds: float) -> None:
        index = status // 100 - 1
        self.by_class[index if 0 <= index < 5 else 4] += 1
        self.buckets[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.count += 1
        self.total_seconds += seconds


class HttpMetrics(Collector):
    """The RED metrics of one service app, collected by Prometheus at scrape time.

    ``edge_http_requests_total{service,method,route,status_class}``,
    ``edge_http_request_duration_seconds{service,method,route}`` (histogram) and
    ``edge_http_requests_in_flight{service}``. ``route`` is the matched route's
    template (``/api/v1/users/{user_id}``), ``none`` when nothing matched.
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self.in_flight = 0
        #: route template -> method -> series; made on a route's first request.
        self.routes: dict[str, dict[str, RouteSeries]] = {}

    def series(self, route: str, method: str) -> RouteSeries:
        by_method = self.routes.get(route)
        if by_method is None:
            by_method = self.routes[route] = {}
        found = by_method.get(method)
        if found is None:
            found = by_method[method] = RouteSeries()
        return found

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily | GaugeMetricFamily]:
        requests = CounterMetricFamily(
            "edge_http_requests",
            "HTTP requests answered, by route template and status class.",
            labels=["service", "method", "route", "status_class"],
        )
        durations = HistogramMetricFamily(
            "edge_http_request_duration_seconds",
            "Time from the request's arrival to the end of its answer.",
            labels=["service", "method", "route"],
        )
        bounds = [repr(b) for b in DURATION_BUCKETS] + ["+Inf"]
        # A copy of the keys: a request may add a route while a scrape runs in a thread.
        for route, by_method in list(self.routes.items()):
            for method, series in list(by_method.items()):
                for name, value in zip(_STATUS_CLASSES, series.by_class, strict=True):
                    if value:
                        requests.add_metric([self.service, method, route, name], value)
                cumulative, running = [], 0
                for bound, value in zip(bounds, series.buckets, strict=True):
                    running += value
                    cumulative.append((bound, float(running)))
                durations.add_metric(
                    [self.service, method, route], cumulative, series.total_seconds
                )
        in_flight = GaugeMetricFamily(
            "edge_http_requests_in_flight",
            "HTTP requests being answered now.",
            labels=["service"],
        )
        in_flight.add_metric([self.service], self.in_flight)
        yield requests
        yield durations
        yield in_flight


def _valid_request_id(value: bytes) -> bool:
    return 0 < len(value) <= 128 and all(33 <= c < 127 for c in value)


class RequestContextMiddleware:
    """Keeps or creates ``X-Request-Id``, echoes it, names the instance, logs the request
    and counts it in ``metrics``."""

    def __init__(self, app: ASGIApp, *, instance: str, metrics: HttpMetrics) -> None:
        self.app = app
        self.instance_header = (b"x-edge-instance", instance.encode())
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _valid_request_id(value):
                request_id = value.decode()
                break
        if not request_id:
            request_id = f"{_ids.getrandbits(128):032x}"
        token = set_request_id(request_id)
        path: str = scope["path"]
        quiet = path in QUIET_PATHS
        metrics = self.metrics
        if not quiet:
            metrics.in_flight += 1
        started = time.perf_counter()
        status = 500
        extra_headers = ((b"x-request-id", request_id.encode()), self.instance_header)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if not quiet:
                seconds = time.perf_counter() - started
                metrics.in_flight -= 1
                method: str = scope["method"]
                route = scope.get("route")
                template = getattr(route, "path", None) if route is not None else None
                metrics.series(
                    template if isinstance(template, str) else NO_ROUTE,
                    method if method in KNOWN_METHODS else "OTHER",
                ).observe(status, seconds)
                access_log.info(
                    "%s %s %s",
                    method,
                    path,
                    status,
                    extra={
                        "method": method,
                        "path": path,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                    },
                )
            reset_request_id(token)
