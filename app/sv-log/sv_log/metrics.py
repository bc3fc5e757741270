"""sv-log's domain metrics (RED metrics come from edgelib; names: doc/observability.md).

The shippers' side (records a service could not ship) is ``edge_log_shipping_dropped``
in every service (edgelib.logship).
"""

from __future__ import annotations

from prometheus_client import Counter

BATCH_OUTCOMES = ("stored", "duplicate", "refused", "unavailable")

RECORDS_RECEIVED = Counter("edge_sv_log_records_received", "Log records stored by the intake.")
RECORDS_DROPPED = Counter(
    "edge_sv_log_records_dropped",
    "Records of checked batches that could not be stored (the store was unavailable).",
)
BATCHES = Counter(
    "edge_sv_log_batches",
    "Intake batches by outcome (stored, duplicate, refused: bad batch, unavailable: store down).",
    ["outcome"],
)
for _outcome in BATCH_OUTCOMES:
    BATCHES.labels(_outcome)
