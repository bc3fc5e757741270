"""sv-notice's domain metrics (RED metrics come from edgelib; names: doc/observability.md)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge

from sv_notice.schemas import QUEUED_CHANNELS

SENT = Counter(
    "edge_sv_notice_notices_sent", "Deliveries a channel accepted, by channel.", ["channel"]
)
FAILED = Counter(
    "edge_sv_notice_notices_failed",
    "Delivery attempts that failed, by channel (each retry counts; see dead_lettered).",
    ["channel"],
)
DEAD_LETTERED = Counter(
    "edge_sv_notice_notices_dead_lettered",
    "Deliveries that ran out of attempts and went to the dead-letter list, by channel.",
    ["channel"],
)
DEAD_LETTERS = Gauge(
    "edge_sv_notice_dead_letters",
    "Deliveries in the dead-letter list now (status failed, not replayed), by channel.",
    ["channel"],
)
for _channel in sorted(QUEUED_CHANNELS):
    SENT.labels(_channel)
    FAILED.labels(_channel)
    DEAD_LETTERED.labels(_channel)
    DEAD_LETTERS.labels(_channel)


def count_attempt(channel: str, outcome: str) -> None:
    """Count one attempt's outcome (``sent``, ``retry`` or ``failed``)."""
    if outcome == "sent":
        SENT.labels(channel).inc()
        return
    FAILED.labels(channel).inc()
    if outcome == "failed":
        DEAD_LETTERED.labels(channel).inc()


def set_dead_letters(counts: Mapping[str, int]) -> None:
    """The dead-letter list's size per channel (channels absent from ``counts`` are 0)."""
    for channel in QUEUED_CHANNELS | set(counts):
        DEAD_LETTERS.labels(channel).set(counts.get(channel, 0))
