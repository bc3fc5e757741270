"""sv-config's domain metrics (RED metrics come from edgelib; names: doc/observability.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RELEASE_KINDS = ("publish", "rollback", "gray", "promote")

RELEASES = Counter(
    "edge_sv_config_releases",
    "Releases made, by kind (publish, rollback, gray, promote).",
    ["kind"],
)
PUSHES = Counter(
    "edge_sv_config_pushes",
    "Watch (long-poll) answers by outcome: changed (namespaces pushed to a client) or "
    "unchanged (304 after the wait).",
    ["outcome"],
)
NAMESPACES_PUSHED = Counter(
    "edge_sv_config_namespaces_pushed", "Namespace snapshots pushed to watching clients."
)
WATCHES_WAITING = Gauge(
    "edge_sv_config_watches_waiting", "Long polls of watching clients waiting for a change now."
)
for _kind in RELEASE_KINDS:
    RELEASES.labels(_kind)
for _outcome in ("changed", "unchanged"):
    PUSHES.labels(_outcome)
