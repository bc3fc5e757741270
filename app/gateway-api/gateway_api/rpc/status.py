"""gRPC status codes, ``grpc-timeout``, and the gateway's refusals as trailers-only answers.

A gRPC client reads the outcome of a call from ``grpc-status`` (and ``grpc-message``),
never from the HTTP status: the gateway's own refusals are HTTP 200 with
``content-type: application/grpc`` and the status in a HEADERS frame that ends the
stream ("trailers-only", as the gRPC over HTTP/2 protocol describes it).
"""

from __future__ import annotations

import enum
import urllib.parse

from edgelib.problems import Problem


class Code(enum.IntEnum):
    """The gRPC status codes (grpc/status.proto)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


#: The pipeline's problems (HTTP statuses) as gRPC codes.
_FROM_PROBLEM = {
    400: Code.INVALID_ARGUMENT,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.UNIMPLEMENTED,
    413: Code.RESOURCE_EXHAUSTED,
    429: Code.RESOURCE_EXHAUSTED,
    502: Code.UNAVAILABLE,
    503: Code.UNAVAILABLE,
    504: Code.DEADLINE_EXCEEDED,
}
#: An upstream's HTTP status other than 200, as gRPC maps it (doc/http-grpc-status-mapping).
_FROM_UPSTREAM_HTTP = {
    400: Code.INTERNAL,
    401: Code.UNAUTHENTICATED,
    403: Code.PERMISSION_DENIED,
    404: Code.UNIMPLEMENTED,
    429: Code.UNAVAILABLE,
    502: Code.UNAVAILABLE,
    503: Code.UNAVAILABLE,
    504: Code.UNAVAILABLE,
}
#: The HTTP status each refusal is counted as in the gateway's metrics and access log.
HTTP_EQUIVALENT = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.UNIMPLEMENTED: 404,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.UNAUTHENTICATED: 401,
}
#: The longest deadline ``grpc-timeout`` may carry (8 digits, hours).
_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
GRPC_CONTENT_TYPE = b"application/grpc"


class GrpcRefusal(Exception):
    """The gateway ends a call with this status (and message)."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def code_of_problem(problem: Problem) -> Code:
    return _FROM_PROBLEM.get(problem.status_code, Code.INTERNAL)


def code_of_upstream_status(status: int) -> Code:
    return _FROM_UPSTREAM_HTTP.get(status, Code.UNKNOWN)


def parse_timeout(value: bytes) -> float | None:
    """Seconds from a ``grpc-timeout`` value (``100m``, ``5S``); None when malformed."""
    digits, unit = value[:-1], value[-1:]
    if not 1 <= len(digits) <= 8 or not digits.isdigit() or unit not in _UNITS:
        return None
    return int(digits) * _UNITS[unit]


def format_timeout(seconds: float) -> bytes:
    """``grpc-timeout`` for what is left of a deadline (milliseconds, at least 1)."""
    millis = max(1, int(seconds * 1000))
    if millis < 100_000_000:
        return b"%dm" % millis
    return b"%dS" % min(99_999_999, int(seconds))


def status_fields(code: Code, message: str) -> list[tuple[bytes, bytes]]:
    """``grpc-status`` and ``grpc-message`` (percent-encoded, as the protocol says)."""
    fields = [(b"grpc-status", b"%d" % int(code))]
    if message:
        encoded = urllib.parse.quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")
        fields.append((b"grpc-message", encoded.encode()))
    return fields


def trailers_only(code: Code, message: str, request_id: bytes) -> list[tuple[bytes, bytes]]:
    """The headers of a trailers-only answer (HTTP 200, the status in them)."""
    return [
        (b"content-type", GRPC_CONTENT_TYPE),
        (b"x-request-id", request_id),
        *status_fields(code, message),
    ]
